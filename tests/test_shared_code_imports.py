"""Product and benchmark never import the tests; the product never imports the testkit.

Every import counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = {node.module}
            else:
                continue
            found.setdefault(str(path.relative_to(REPO)), set()).update(names)
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("agent", ("tests", "testkit", "bench")),
        ("skills", ("tests", "testkit", "bench")),
        ("testkit", ("tests", "bench")),
        ("bench", ("tests",)),
    ],
)
def test_forbidden_imports(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        path: sorted(name for name in names if name.split(".")[0] in forbidden)
        for path, names in imported_modules(package).items()
    }
    assert not {path: names for path, names in wrong.items() if names}


def test_no_test_imports_conftest() -> None:
    wrong = {
        path: names
        for path, names in imported_modules("tests").items()
        if any(name == "tests.conftest" or name.endswith(".conftest") for name in names)
    }
    assert not wrong
