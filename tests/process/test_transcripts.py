"""Every simulator transcript README.md and docs/calls.md show is what the command prints now.

A transcript is a promise to a reader: type this, see that. Each one is run here as written
and its output compared, line by line, with the lines shown under its ``$`` command, so a
change to the agent's answers, actions or handoffs cannot leave a stale transcript behind.

"As written" means a fresh clone, from its root, without an activated venv:

- the command runs in bash in a directory of the test's own, which holds the files the
  command names: ``MFA_AGENT_CONFIG=<file>.yaml`` is the YAML block shown just above the
  transcript, and a ``directory.path`` that YAML names is the CSV block shown above that;
- ``.venv/bin/`` is the venv running these tests (it stands for the clone's ``.venv``), and
  ``agent/config.yaml`` is the repository's own, shipped file;
- with no ``MFA_AGENT_CONFIG`` (the README's quick start) the agent reads that same shipped
  file, ``agent.config.settings.DEFAULT_CONFIG_PATH``, found beside the package and not from the
  working directory, as are the prompts (``agent.config.prompts.DEFAULT_PROMPTS_DIR``; a prompt that
  could not be found would stop the call, and the transcript with it);
- no ``SIGNALWIRE_*``, ``MFA_*``, ``SWML_*``, ``REDIS_URL`` or ``AGENT_URL`` is inherited, so
  the agent runs in-process on the sandbox provider, as in a fresh clone.

Running outside the repository keeps the sandbox database (``var/``) out of it, and gives each
transcript an empty one, as a fresh clone has: no earlier run's sends count against the
per-number limits.

Only what changes from run to run is replaced before comparing: call ids (whole or cut short
as ``ebbf1a3e-…``), the loopback port, and the code the sandbox texted, in digits and read out
in English or Spanish words (``{code}`` / ``{code_words}`` in a ``--say`` are filled by the
simulator itself). The code is taken from each side's own "Your code:" line, so a shown
transcript whose caller reads another code than the one texted fails too.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from agent.config.prompts import DEFAULT_PROMPTS_DIR
from agent.config.settings import DEFAULT_CONFIG_PATH
from tests.support.shown import (
    REPO,
    ShownBlock,
    all_blocks,
    preceding_block,
    shown_block,
    venv_bin,
)

TRANSCRIPTS = [
    shown_block("quick-start-call"),
    shown_block("handoff-to-number"),
    shown_block("handoff-to-sip"),
    shown_block("failed-hang-up"),
    shown_block("failed-to-desk"),
    shown_block("account-holder"),
    shown_block("spanish-call"),
]

VENV_BIN = re.compile(r"(?<![\w./-])\.venv/bin/")
SHIPPED_CONFIG = "agent/config.yaml"
CONFIG_ARG = re.compile(r"\bMFA_AGENT_CONFIG=(\S+)")
NOT_INHERITED = ("SIGNALWIRE_", "MFA_", "SWML_")
VERIFIED = "global_data.mfa_verified = true"

CALL_ID = re.compile(r"\b[0-9a-f]{8}-(?:[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|…)")
PORT = re.compile(r"\b127\.0\.0\.1:\d+")
TEXTED_CODE = re.compile(r"\] .* Your code: (\d{6})$|\] .* Su codigo: (\d{6})$")
DIGIT_WORDS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "es": ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
}


def test_the_documents_show_the_transcripts():
    assert all(block.lang == "" and len(block.transcript) == 1 for block in TRANSCRIPTS)
    assert {block.path.name for block in TRANSCRIPTS} == {"README.md", "calls.md"}


def test_the_shipped_config_and_prompts_are_the_repositorys():
    """What the quick start reads without MFA_AGENT_CONFIG, wherever it runs from."""
    assert DEFAULT_CONFIG_PATH.resolve() == REPO / SHIPPED_CONFIG
    assert DEFAULT_PROMPTS_DIR == REPO / "prompts"


def fresh_clone_env() -> dict[str, str]:
    """This process's environment without anything that would take the agent off the sandbox
    or point the simulator elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(NOT_INHERITED) and k not in ("REDIS_URL", "AGENT_URL")
    }


def write_named_files(block: ShownBlock, command: str, where: Path) -> None:
    """The YAML file ``command`` names (the block shown just above the transcript) and the
    directory CSV that YAML names (the block shown above it), saved in ``where``."""
    named = CONFIG_ARG.search(command)
    if named is None or named.group(1) == SHIPPED_CONFIG:
        return
    config = preceding_block(block, "yaml")
    assert_just_above(config, block)
    (where / named.group(1)).write_text(config.body + "\n", encoding="utf-8")
    directory = (yaml.safe_load(config.body).get("directory") or {}).get("path")
    if directory:
        csv = preceding_block(config, "csv")
        assert_just_above(csv, config)
        (where / directory).write_text(csv.body + "\n", encoding="utf-8")


def assert_just_above(above: ShownBlock, block: ShownBlock) -> None:
    """No other block between ``above`` and ``block``: it is the file ``block`` runs with."""
    between = [
        b.where for b in all_blocks() if b.path == block.path and above.line < b.line < block.line
    ]
    assert not between, f"{block.where}: blocks between it and its {above.lang}: {between}"


def as_run_here(command: str) -> str:
    """``command`` with this venv for the clone's ``.venv`` and the repository's shipped
    config for ``agent/config.yaml``."""
    command = VENV_BIN.sub(lambda _: venv_bin(), command)
    return command.replace(f"={SHIPPED_CONFIG}", f"={REPO / SHIPPED_CONFIG}")


def run_shown(block: ShownBlock, command: str, where: Path) -> subprocess.CompletedProcess[str]:
    write_named_files(block, command, where)
    return subprocess.run(
        ["bash", "-c", as_run_here(command)],
        cwd=where,
        env=fresh_clone_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def normalised(lines: list[str]) -> list[str]:
    """``lines`` with the call id, the port and the texted code (digits and words) replaced
    by placeholders."""
    texted = next((m.group(1) or m.group(2) for m in map(TEXTED_CODE.search, lines) if m), None)
    out: list[str] = []
    for line in lines:
        line = PORT.sub("127.0.0.1:<port>", CALL_ID.sub("<call id>", line))
        if texted is not None:
            line = re.sub(rf"(?<!\d){texted}(?!\d)", "<code>", line)
            for words in DIGIT_WORDS.values():
                read_out = " ".join(words[int(digit)] for digit in texted)
                line = re.sub(rf"\b{read_out}\b", "<code in words>", line)
        out.append(line)
    return out


def test_normalising_replaces_only_what_changes_from_run_to_run():
    lines = [
        "call ebbf1a3e-… from +15551230001 to the agent at http://127.0.0.1:33061",
        "    SIP header X-MFA-Call-ID: b82aee7b-a980-4600-8d70-199082bb7bd2",
        "  [sandbox text to +15551230001] From our company: ... Your code: 555123",
        '> verify_mfa("token": "it\'s five five five one two three")',
        '> verify_mfa("token": "cinco cinco cinco uno dos tres, 555123, 111111")',
    ]
    assert normalised(lines) == [
        "call <call id> from +15551230001 to the agent at http://127.0.0.1:<port>",
        "    SIP header X-MFA-Call-ID: <call id>",
        "  [sandbox text to +15551230001] From our company: ... Your code: <code>",
        '> verify_mfa("token": "it\'s <code in words>")',
        '> verify_mfa("token": "<code in words>, <code>, 111111")',
    ]


@pytest.mark.parametrize("block", TRANSCRIPTS, ids=lambda block: block.name)
def test_the_transcript_is_what_the_command_prints(tmp_path: Path, block: ShownBlock):
    for command, shown in block.transcript:
        result = run_shown(block, command, tmp_path)
        expected, printed = normalised(shown), normalised(result.stdout.splitlines())
        diff = "\n".join(
            difflib.unified_diff(
                expected, printed, f"{block.where} (shown)", "printed", lineterm=""
            )
        )
        assert printed == expected, f"{command}\n{diff}\nstderr:\n{result.stderr}"
        assert result.returncode == (0 if VERIFIED in shown else 1), result.stderr
        assert "Traceback" not in result.stderr, result.stderr
