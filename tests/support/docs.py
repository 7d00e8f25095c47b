"""The documentation as a reader finds it: README.md and every page under docs/ (the MkDocs
site, ``mkdocs.yml``). Tests that hold a page to the code look a text up here by what it says,
not by the page it is on, so moving a section to another page moves the test with it.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

_HEADING = re.compile(r"#{1,6} (?P<title>.+?)\s*$")


def pages() -> list[Path]:
    """README.md, then every Markdown page under docs/, in a stable order."""
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def page_holding(text: str) -> Path:
    """The one page that holds ``text``."""
    found = [page for page in pages() if text in page.read_text(encoding="utf-8")]
    names = [str(page.relative_to(REPO)) for page in found]
    assert len(found) == 1, f"{len(found)} pages hold {text!r}: {names}"
    return found[0]


def text_holding(text: str) -> str:
    """The whole text of the one page that holds ``text``."""
    return page_holding(text).read_text(encoding="utf-8")


def all_text() -> str:
    """Every page's text, one after the other."""
    return "\n\n".join(page.read_text(encoding="utf-8") for page in pages())


def section(title: str) -> str:
    """The text under the one heading (of any level, on any page) titled ``title``, up to the
    next heading; lines in fenced code blocks are never taken for headings."""
    found: list[tuple[Path, str]] = []
    for page in pages():
        taking: list[str] | None = None
        fenced = False
        for line in page.read_text(encoding="utf-8").splitlines(keepends=True):
            if line.startswith("```"):
                fenced = not fenced
            heading = None if fenced else _HEADING.match(line)
            if heading and taking is not None:
                found.append((page, "".join(taking)))
                taking = None
            if heading and heading["title"] == title:
                taking = []
            elif taking is not None:
                taking.append(line)
        if taking is not None:
            found.append((page, "".join(taking)))
    names = [str(page.relative_to(REPO)) for page, _ in found]
    assert len(found) == 1, f"{len(found)} headings are titled {title!r}: {names}"
    return found[0][1]
