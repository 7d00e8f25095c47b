"""The languages the agent speaks (``languages:`` in the YAML file) and their text messages.

Each language names its speech-recognition code, its name for the prompt, its voice and
optional fillers. Start-up refuses a language the agent cannot serve whole: one whose
codes it cannot read back (no number words shipped for it, ``skills/mfa/speech/number_words.py``)
or one without a text-message template (``code.message``) that fits one SMS segment.

``code.message`` is one template per language code (``{en: ..., es: ...}``); a plain
string is the English template, as it was before there were languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails

from agent.config.call_config import refuse
from skills.mfa.flow.sms_template import template_problem
from skills.mfa.speech.number_words import READ_LANGUAGES, primary_subtag

ENGLISH = "en"
# BCP 47 as speech recognisers take it: "en", "en-US", "es-419".
LANGUAGE_CODE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class LanguageConfig(BaseModel):
    """One entry of ``languages:``; the SWML it becomes is built in ``agent/app.py``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field("en-US", pattern=LANGUAGE_CODE)
    name: str = Field("English", min_length=1, max_length=40)
    # "engine.voice" or "engine.voice:model": SignalWire's ai.languages reference says to
    # always name the engine, as a bare voice id resolves against a default that can change.
    voice: str = Field("rime.spore", pattern=r"^[A-Za-z0-9_-]+\.[^\s.][^\s]*$")
    speech_fillers: list[str] | None = None
    function_fillers: list[str] | None = None

    @field_validator("code")
    @classmethod
    def _has_number_words(cls, value: str) -> str:
        if primary_subtag(value) not in READ_LANGUAGES:
            raise refuse(
                f"the agent cannot read a code back in {value!r}: it has number words for "
                f"{', '.join(READ_LANGUAGES)} only (skills/mfa/speech/number_words.py)"
            )
        return value

    @field_validator("speech_fillers", "function_fillers")
    @classmethod
    def _short_phrases(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any(not 0 < len(p) <= 200 for p in value)):
            raise refuse("a list of one or more phrases of 1 to 200 characters")
        return value


def check_languages(languages: list[LanguageConfig]) -> None:
    """Each code once: the tool's enum and the text-message templates are keyed by it."""
    seen: set[str] = set()
    for index, language in enumerate(languages):
        if language.code in seen:
            _fail(("languages", index, "code"), language.code, "is listed twice")
        seen.add(language.code)
    primaries = [primary_subtag(language.code) for language in languages]
    for index, primary in enumerate(primaries):
        if primaries.index(primary) != index:
            _fail(
                ("languages", index, "code"),
                languages[index].code,
                f"is a second code for {primary!r}: the caller's language is chosen per "
                "language, so list it once",
            )


def templates_by_language(
    message: str | Mapping[str, str], languages: list[LanguageConfig]
) -> dict[str, str]:
    """``{language code: template}`` for every configured language, from ``code.message``.

    A key may be the language's code or its primary subtag (``es`` for ``es-MX``).
    """
    if isinstance(message, str):
        english = [lang.code for lang in languages if primary_subtag(lang.code) == ENGLISH]
        return {english[0]: message} if english else {}
    templates: dict[str, str] = {}
    for language in languages:
        for key in (language.code, primary_subtag(language.code)):
            if key in message:
                templates[language.code] = message[key]
                break
    return templates


def check_templates(
    message: str | Mapping[str, str],
    languages: list[LanguageConfig],
    company: str,
    token_length: int,
) -> None:
    """Every language has a template, every template fits one SMS segment with the code,
    and no template is keyed by a language the agent does not speak (a typo)."""
    templates = templates_by_language(message, languages)
    for language in languages:
        if language.code not in templates:
            key = primary_subtag(language.code)
            hint = (
                "code.message is one text, which is the English template; write one "
                f"template per language: code.message: {{en: ..., {key}: ...}}"
                if isinstance(message, str)
                else f"add code.message.{key}"
            )
            _fail(
                ("code", "message"),
                message,
                f"has no text-message template for {language.name} ({language.code}): {hint}",
            )
    if not isinstance(message, str):
        known = {key for lang in languages for key in (lang.code, primary_subtag(lang.code))}
        for key in message:
            if key not in known:
                _fail(
                    ("code", "message", key),
                    message[key],
                    f"is not a configured language (languages: "
                    f"{', '.join(lang.code for lang in languages)})",
                )
    for code, template in templates.items():
        problem = template_problem(template, company, token_length)
        if problem is not None:
            where = ("code", "message") if isinstance(message, str) else ("code", "message", code)
            _fail(where, template, problem)


def _fail(loc: tuple[str | int, ...], value: Any, why: str) -> None:
    detail: Any = InitErrorDetails(type=refuse(why), loc=loc, input=value)
    raise ValidationError.from_exception_data("FileConfig", [detail])
