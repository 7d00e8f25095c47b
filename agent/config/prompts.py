"""Prompt text lives in ``prompts/*.md`` so non-engineers can edit the persona and flow.

Each file is one prompt section: a ``# Title`` line, paragraphs of body, and
``- `` bullet lines. ``{persona_name}``, ``{company_name}``, ``{token_length}``,
``{language_names}`` and ``{language_codes}`` are filled from the settings; any other
brace is left alone. The persona and the call flow are one text whatever the caller's
language: with several languages, ``languages.md`` tells Jim to answer in the caller's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config.settings import Settings

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
PROMPT_FILES = ("persona.md", "call_flow.md")
# With an account directory, Jim asks for the account number instead (same placeholders).
ACCOUNT_FLOW_FILE = "call_flow_account.md"
# With more than one language: answer in the caller's, and name it to send_mfa.
LANGUAGES_FILE = "languages.md"


class _KeepUnknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def prompts_dir(settings: Settings) -> Path:
    return Path(settings.file.prompts_dir) if settings.file.prompts_dir else DEFAULT_PROMPTS_DIR


def load_prompt_sections(settings: Settings) -> list[dict[str, Any]]:
    values = _KeepUnknown(
        persona_name=settings.file.persona_name,
        company_name=settings.file.company_name,
        token_length=str(settings.file.code.token_length),
        language_names=_listed([lang.name for lang in settings.file.languages]),
        language_codes=", ".join(lang.code for lang in settings.file.languages),
    )
    directory = prompts_dir(settings)
    names = PROMPT_FILES
    if settings.file.directory.path or settings.directory_url:
        names = tuple(ACCOUNT_FLOW_FILE if n == "call_flow.md" else n for n in PROMPT_FILES)
    if len(settings.file.languages) > 1:
        names = (*names, LANGUAGES_FILE)
    return [parse_section((directory / n).read_text(encoding="utf-8"), values) for n in names]


def _listed(names: list[str]) -> str:
    """ "English", "English or Spanish", "English, Spanish or French"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def parse_section(text: str, values: dict[str, str]) -> dict[str, Any]:
    title = ""
    body: list[str] = []
    bullets: list[str] = []
    for line in text.format_map(values).splitlines():
        stripped = line.strip()
        if stripped.startswith("# ") and not title:
            title = stripped[2:].strip()
        elif stripped.startswith("- "):
            bullets.append(stripped[2:].strip())
        elif stripped and bullets:
            bullets[-1] += " " + stripped
        elif stripped:
            body.append(stripped)
    section: dict[str, Any] = {"title": title or "Instructions", "body": " ".join(body)}
    if bullets:
        section["bullets"] = bullets
    return section
