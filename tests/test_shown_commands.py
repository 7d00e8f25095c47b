"""Every command README.md and the pages under docs/ show is run by a test, as written from a
fresh clone.

The blocks are found by tests/support/shown.py: a block with commands must carry a
``<!-- run: NAME by tests/....py -->`` marker, and that test must fetch it by name
(``shown_block("NAME")``), so moving or rewording a block moves the test with it and a block
nobody runs cannot be added.
"""

from __future__ import annotations

import re

import pytest

from tests.support.shown import REPO, all_blocks

BLOCKS = all_blocks()
WITH_COMMANDS = [block for block in BLOCKS if block.commands]

# Blocks no test here can run, and why. Each is a third party's command against a registry
# or the internet, which this machine does not reach (see ../shared/testing-notes.md).
NOT_RUN = {
    "compose-up": "pulls python, redis and caddy images from a registry; tests/container/"
    "test_compose.py checks compose.yaml against the Compose schema and the image instead",
}

# A fresh clone has no activated venv: the project's tools are run from .venv/bin.
VENV_TOOLS = re.compile(r"(?:^|[\s;&|(])(python|python3|pip|swaig-test|pytest|ruff)\s")


def test_the_documents_show_commands():
    names = [block.name for block in WITH_COMMANDS]
    assert len(WITH_COMMANDS) >= 10, names
    assert {"quick-start-call", "replicas-recipe", "systemd-recipe"} <= set(names)


@pytest.mark.parametrize("block", WITH_COMMANDS, ids=lambda b: b.name or b.where)
def test_every_block_with_commands_names_the_test_that_runs_it(block):
    assert block.name, f"{block.where}: a block of commands without a '<!-- run: ... -->' marker"
    if block.name in NOT_RUN:
        return
    assert block.test is not None
    test_file = REPO / block.test
    assert test_file.is_file(), f"{block.where}: {block.test} does not exist"
    source = test_file.read_text(encoding="utf-8")
    assert f'shown_block("{block.name}")' in source, (
        f"{block.where}: {block.test} never fetches shown_block({block.name!r})"
    )


def test_marker_names_are_unique_and_every_marker_marks_commands():
    names = [block.name for block in BLOCKS if block.name]
    assert len(names) == len(set(names)), names
    idle = [block.where for block in BLOCKS if block.name and not block.commands]
    assert not idle, f"markers on blocks without commands: {idle}"
    assert set(NOT_RUN) <= set(names), "an exemption for a block that is gone"


@pytest.mark.parametrize("block", WITH_COMMANDS, ids=lambda b: b.name or b.where)
def test_commands_run_from_a_fresh_clone_without_an_activated_venv(block):
    for command in block.commands:
        for tool in VENV_TOOLS.findall(command):
            if tool == "python3" and "-m venv" in command:
                continue  # making the venv itself
            assert f".venv/bin/{tool} " in command or f"/.venv/bin/{tool} " in command, (
                f"{block.where}: `{command}` runs {tool} from PATH, not .venv/bin"
            )


def test_every_page_is_checked_but_the_benchmarks_which_ci_runs():
    """README.md and every page under docs/ are read for blocks, but docs/performance.md: it
    shows the benchmark's own commands (``python -m bench`` in an activated venv), and
    ``.ci/run`` runs the benchmark itself."""
    from tests.support.docs import pages
    from tests.support.shown import NOT_SHOWN, SHOWN_FILES

    assert set(NOT_SHOWN) == {REPO / "docs" / "performance.md"}
    assert all(page.is_file() for page in NOT_SHOWN)
    assert "python -m bench" in (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "-m bench --quick" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert set(SHOWN_FILES) == set(pages()) - set(NOT_SHOWN)
    assert {REPO / "README.md", REPO / "docs" / "calls.md", REPO / "docs" / "swaig-test.md"} <= set(
        SHOWN_FILES
    )


def test_the_checker_sees_sh_lines_and_transcript_commands():
    """The parser itself, on two blocks written here (so a broken parser cannot pass the
    checks above by finding nothing)."""
    from tests.support.shown import ShownBlock

    sh = ShownBlock(REPO, 1, "sh", "# a comment\nA=1 \\\n  run it\n\nnext", None, None)
    assert sh.commands == ["A=1 run it", "next"]
    transcript = ShownBlock(REPO, 1, "", "$ one \\\n    two\nout\n$ three\n", None, None)
    assert transcript.commands == ["one two", "three"]
    assert transcript.transcript == [("one two", ["out"]), ("three", [])]
    assert ShownBlock(REPO, 1, "json", '{"a": 1}', None, None).commands == []
