"""The commands README.md and the pages under docs/ show, found by name: tests run what a
reader reads.

A code block that shows commands is preceded by one marker line naming it and the test that
runs it::

    <!-- run: replicas-recipe by tests/deploy/test_caddy_replicas.py (any words after) -->

That test fetches the block with ``shown_block("replicas-recipe")`` and runs it (with free
ports or a fake space in place of the shown ones, where it must). ``tests/test_shown_commands.py``
fails on a block with commands and no marker, on a marker whose test never fetches it, and on a
command that a fresh clone could not run as written.

Commands are the lines of a ``sh`` block (comments and blank lines aside, a trailing ``\\``
joining the next line) and the ``$ `` lines of a transcript (a block without a language, with
what the command printed under each ``$`` line).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.docs import REPO, pages

# README.md and every page of the docs site (tests/support/docs.py), but docs/performance.md:
# it shows the bench's own commands (in an activated venv), which .ci/run runs itself.
NOT_SHOWN = {REPO / "docs" / "performance.md": ".ci/run runs the benchmark it shows"}
SHOWN_FILES = tuple(page for page in pages() if page not in NOT_SHOWN)

_BLOCK = re.compile(
    r"(?:^<!-- run: (?P<name>[\w.-]+) by (?P<test>\S+\.py)[^\n]*-->\n)?"
    r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def venv_bin() -> str:
    """What stands for a fresh clone's ``.venv/bin/`` when a test runs a shown command: the
    bin directory of the venv running the tests (in CI, the clone's own ``.venv``)."""
    return str(Path(sys.executable).parent) + "/"


@dataclass(frozen=True)
class ShownBlock:
    """One fenced block of a document, with its marker when it has one."""

    path: Path
    line: int
    lang: str
    body: str
    name: str | None
    test: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def commands(self) -> list[str]:
        """The commands a reader would type, continuation lines joined."""
        if self.lang in ("sh", "bash", "shell"):
            lines = [line for line in self.body.splitlines() if not line.startswith("#")]
        elif self.lang in ("", "console"):
            lines = []
            taking = False
            for line in self.body.splitlines():
                if line.startswith("$ "):
                    lines.append(line[2:])
                    taking = line.endswith("\\")
                elif taking:
                    lines.append(line)
                    taking = line.endswith("\\")
        else:
            return []
        commands: list[str] = []
        pending = ""
        for line in lines:
            if not line.strip() and not pending:
                continue
            if self.lang != "":
                line = re.sub(r"\s+#\s.*$", "", line)  # a shell comment after the command
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].rstrip() + " "
                continue
            commands.append((pending + line.strip()).strip())
            pending = ""
        return commands

    @property
    def transcript(self) -> list[tuple[str, list[str]]]:
        """Each ``$`` command of a transcript with the lines shown under it."""
        steps: list[tuple[str, list[str]]] = []
        taking = False
        for line in self.body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:].rstrip("\\").rstrip(), []))
                taking = line.endswith("\\")
            elif taking:
                command, shown = steps[-1]
                steps[-1] = (command + " " + line.strip().rstrip("\\").rstrip(), shown)
                taking = line.endswith("\\")
            elif steps:
                steps[-1][1].append(line)
        return steps


def all_blocks() -> list[ShownBlock]:
    blocks: list[ShownBlock] = []
    for path in SHOWN_FILES:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            fence = match.start("lang") - 3
            blocks.append(
                ShownBlock(
                    path=path,
                    line=text.count("\n", 0, fence) + 1,
                    lang=match["lang"],
                    body=match["body"].removesuffix("\n"),
                    name=match["name"],
                    test=match["test"],
                )
            )
    return blocks


def shown_block(name: str) -> ShownBlock:
    """The block marked ``<!-- run: NAME by ... -->`` in README.md or docs/."""
    found = [block for block in all_blocks() if block.name == name]
    assert len(found) == 1, f"{len(found)} blocks are marked 'run: {name}' in README.md and docs/"
    return found[0]


def preceding_block(block: ShownBlock, lang: str) -> ShownBlock:
    """The nearest ``lang`` block before ``block`` in the same file: the configuration a
    transcript ran with, shown above it."""
    earlier = [
        b for b in all_blocks() if b.path == block.path and b.line < block.line and b.lang == lang
    ]
    assert earlier, f"{block.where}: no {lang} block above it"
    return earlier[-1]
