"""The rules across settings that stop start-up: which provider, and what an account needs.

Each raises ``ValueError`` with a sentence that names the variables to fix; ``Settings``
runs them while it validates, and ``load_settings`` turns them into ``SettingsError``.
"""

from __future__ import annotations

import ipaddress
import re
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


SENTINELS_EXAMPLE = "10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379"


def parse_sentinels(value: str) -> tuple[tuple[str, int], ...]:
    """``REDIS_SENTINELS``: ``host:port`` entries separated by commas (an IPv6 address in
    brackets, ``[fd00::5]:26379``); each names the entry at fault when it is wrong."""
    if "://" in value:
        raise ValueError(f"is a list of host:port, not a URL; use one such as {SENTINELS_EXAMPLE}")
    found: list[tuple[str, int]] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            raise ValueError(
                f"has an empty entry; use host:port,host:port such as {SENTINELS_EXAMPLE}"
            )
        address = _sentinel_address(entry)
        if address in found:
            raise ValueError(f"names {entry} twice")
        found.append(address)
    return tuple(found)


def _sentinel_address(entry: str) -> tuple[str, int]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError(f"{entry!r} has no port; write [address]:port")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{entry!r}: {host!r} is not an IPv6 address") from None
    else:
        host, colon, port_text = entry.rpartition(":")
        if not colon:
            raise ValueError(
                f"{entry!r} has no port; write host:port (a sentinel listens on 26379 by default)"
            )
        if ":" in host:
            raise ValueError(f"{entry!r}: write an IPv6 address in brackets, [address]:port")
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{entry!r}: {host!r} is not a host name or an IP address")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")
#: What ``sentinel monitor`` accepts as a name, less anything a typo would bring.
_MASTER_NAME = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def check_sentinel_master(value: str) -> str:
    """``REDIS_SENTINEL_MASTER``: the name in the sentinels' ``sentinel monitor`` line."""
    if not _MASTER_NAME.fullmatch(value):
        raise ValueError(
            "must be the name the sentinels monitor the primary under (their "
            "'sentinel monitor <name> ...' line): letters, digits and . _ : - only"
        )
    return value


def require_one_redis(data: dict[str, Any]) -> None:
    """``REDIS_URL`` or Sentinel (its two variables together), not both."""
    sentinels, master = data.get("redis_sentinels"), data.get("redis_sentinel_master")
    if sentinels and data.get("redis_url"):
        raise ValueError(
            f"{env_name('redis_url')} and {env_name('redis_sentinels')}: set one, not both "
            "(with Sentinel the sentinels name the primary; REDIS_URL is one fixed address)"
        )
    if bool(sentinels) != bool(master):
        missing = env_name("redis_sentinel_master" if sentinels else "redis_sentinels")
        other = env_name("redis_sentinels" if sentinels else "redis_sentinel_master")
        raise ValueError(
            f"{missing} is required when {other} is set: Sentinel needs the sentinels' "
            "addresses and the name they monitor the primary under"
        )
