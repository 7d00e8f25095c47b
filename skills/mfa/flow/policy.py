"""The code's rules and who may be texted: one value the tools, the upstream calls and the
directory path all read, built from the settings in ``build_agent``."""

from __future__ import annotations

from dataclasses import dataclass

from skills.mfa.speech.number_words import primary_subtag


@dataclass(frozen=True, slots=True)
class CodePolicy:
    """The code's rules and who may be texted, from the settings.

    ``messages`` holds the text message's words per configured language code, the first
    language first (the one a send that names none gets); empty means ``message`` alone,
    in English.
    """

    message: str
    token_length: int
    valid_for: int
    max_attempts: int
    allow_other_numbers: bool
    default_region: str | None
    allowed_country_codes: frozenset[int] = frozenset({1})
    messages: tuple[tuple[str, str], ...] = ()

    @property
    def languages(self) -> tuple[str, ...]:
        """The configured language codes, whose number words a caller may read a code in."""
        return tuple(code for code, _ in self.messages) or ("en",)

    def language_of(self, named: object) -> str:
        """The configured code ``named`` stands for ("es", "es-MX" or "ES" for ``es``), or
        the first language when it names none of them: a claim from the model, never
        trusted further than choosing among the operator's own templates."""
        languages = self.languages
        if isinstance(named, str) and named:
            wanted = named.strip().lower()
            for code in languages:
                if code.lower() == wanted:
                    return code
            for code in languages:
                if primary_subtag(code) == primary_subtag(wanted):
                    return code
        return languages[0]

    def message_for(self, language: str) -> str:
        """The text message's words in ``language`` (a code ``language_of`` returned)."""
        return dict(self.messages).get(language, self.message)
