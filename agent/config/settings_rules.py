"""The rules across settings that stop start-up: which provider, and what an account needs.

Each raises ``ValueError`` with a sentence that names the variables to fix; ``Settings``
runs them while it validates, and ``load_settings`` turns them into ``SettingsError``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from agent.config.env_vars import env_name, parse_flag
from skills.mfa.delivery.providers.signalwire import is_loopback_host, normalize_space_url


class ProviderName(StrEnum):
    SIGNALWIRE = "signalwire"
    SANDBOX = "sandbox"


def refuse_sandbox_beside_an_account(data: dict[str, Any], mentioned: list[str]) -> None:
    """``MFA_PROVIDER=sandbox`` left set next to an account (the swaig-test recipe exports
    it) would run the sandbox on a production number: codes to the log, never to the
    caller. Only on purpose, with ``MFA_SANDBOX_WITH_ACCOUNT=1``."""
    if data["provider"] is not ProviderName.SANDBOX or not mentioned:
        return
    if parse_flag(data.get("sandbox_with_account", False)) is True:
        return
    names = ", ".join(env_name(f"signalwire.{field}") for field in mentioned)
    raise ValueError(
        f"{env_name('provider')}=sandbox with SignalWire account variables set ({names}): "
        "codes would go to the log, never to the caller's phone. Unset "
        f"{env_name('provider')} to use the account, unset those variables for the sandbox, "
        f"or set {env_name('sandbox_with_account')}=1 to run the sandbox beside them on purpose"
    )


def require_signing_key_off_loopback(data: dict[str, Any], account: dict[str, Any]) -> None:
    """SignalWire signs its webhooks in production. Without the key, anyone holding the
    basic-auth pair (it is in every URL the SWML names) can post a whole fabricated
    session under a live call's ``call_id``. A loopback space (a local fake) may skip it."""
    if data.get("signing_key"):
        return
    try:
        host = urlsplit(normalize_space_url(str(account.get("base_url", "")))).hostname
    except ValueError:
        return  # the space's own check names the problem
    if is_loopback_host(host):
        return
    raise ValueError(
        f"{env_name('signing_key')} is required with a SignalWire account: SignalWire signs "
        "every webhook, and without the key anyone holding the basic-auth pair could post a "
        "whole fabricated call. Copy the Signing Key from your space's API page "
        "(Dashboard > API > Signing Key)"
    )


def absolute_http_url(value: str | None, example: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL such as {example}")
    return value


def require_e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("must be an E.164 number such as +15551234567") from None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if formatted != value.strip() or not phonenumbers.is_possible_number(number):
        raise ValueError("must be an E.164 number such as +15551234567")
    return formatted
