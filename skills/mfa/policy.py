"""The code's rules and who may be texted: one value the tools, the upstream calls and the
directory path all read, built from the settings in ``build_agent``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CodePolicy:
    """The code's rules and who may be texted, from the settings."""

    message: str
    token_length: int
    valid_for: int
    max_attempts: int
    allow_other_numbers: bool
    default_region: str | None
    allowed_country_codes: frozenset[int] = frozenset({1})
