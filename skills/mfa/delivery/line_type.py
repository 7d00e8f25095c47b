"""What kind of line a number is, looked up before a code is sent to it.

A code texted to a landline never arrives, and the caller waits for nothing. Twilio Verify
pairs its sends with Lookup's line type for that reason; SignalWire documents the same
lookup: ``GET /api/relay/rest/lookup/phone_number/{e164}?include=carrier`` answers
``carrier.linetype`` ("Generally either wireless or landline", signalwire/docs
``fern/apis/signalwire-rest/openapi.yaml``, ``CarrierLookupInfo``). The carrier part is
billable, so each number is looked up once and the answer kept for days (``CachedLineTypes``,
in this process or on Redis for replicas).

A lookup never blocks a call: it has its own short deadline, and any failure (timeout,
connection, 4xx, 5xx, a body it cannot read) is ``LookupFailed``, which the caller turns
into "unknown" and a text as before. Numbers are kept in caches only as a keyed hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from urllib.parse import quote

import httpx

from skills.mfa.delivery.http_pool import IDENTITY, read_bounded

log = logging.getLogger("mfa.line_type")

_LOOKUP_PATH = "/api/relay/rest/lookup/phone_number/"
_MAX_BODY_BYTES = 64 * 1024


class LineType(StrEnum):
    WIRELESS = "wireless"
    LANDLINE = "landline"
    VOIP = "voip"
    OTHER = "other"
    UNKNOWN = "unknown"


class LookupSource(StrEnum):
    """Where an answer came from, for the metrics and the outcome record."""

    LOOKED_UP = "looked_up"
    CACHED = "cached"
    FAILED = "failed"  # the lookup failed or timed out: treated as unknown, texted
    OFF = "off"  # no lookup configured


@dataclass(frozen=True, slots=True)
class LineAnswer:
    line_type: LineType
    source: LookupSource


class LookupFailed(Exception):
    """No usable answer; ``kind`` (``timeout``, ``connect``, ``http_404``...) is for the log."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"line type lookup failed: {kind}")
        self.kind = kind


def parse_line_type(value: object) -> LineType:
    """SignalWire's ``carrier.linetype`` (free text) as one of ours."""
    if not isinstance(value, str) or not value.strip():
        return LineType.UNKNOWN
    text = value.strip().lower()
    if "voip" in text:
        return LineType.VOIP
    if text in ("wireless", "mobile", "cellular", "cell"):
        return LineType.WIRELESS
    if text in ("landline", "fixed", "fixed line", "fixed-line", "wireline"):
        return LineType.LANDLINE
    return LineType.OTHER


class LineTypeLookup(Protocol):
    async def lookup(self, e164: str) -> LineType:
        """The number's line type; raises ``LookupFailed``."""
        ...


class SignalWireLineTypes:
    """``LineTypeLookup`` on SignalWire's phone-number lookup, with ``include=carrier``."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        project_id: str,
        api_token: str,
        deadline_seconds: float = 2.0,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + _LOOKUP_PATH
        self._auth = httpx.BasicAuth(project_id, api_token)
        self._deadline = deadline_seconds

    def __repr__(self) -> str:
        return "SignalWireLineTypes(<credentials hidden>)"

    async def lookup(self, e164: str) -> LineType:
        url = self._base + quote(e164, safe="+")
        try:
            async with asyncio.timeout(self._deadline):
                async with self._http.stream(
                    "GET", url, params={"include": "carrier"}, auth=self._auth, headers=IDENTITY
                ) as response:
                    content = await read_bounded(response, _MAX_BODY_BYTES)
        except TimeoutError:
            raise LookupFailed("timeout") from None
        except httpx.TimeoutException:
            raise LookupFailed("timeout") from None
        except httpx.HTTPError:
            raise LookupFailed("connect") from None
        except Exception as exc:  # BodyTooLarge and anything unexpected: never the call's
            raise LookupFailed(type(exc).__name__) from None
        if response.status_code != 200:
            raise LookupFailed(f"http_{response.status_code}")
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError):
            raise LookupFailed("bad_body") from None
        carrier = payload.get("carrier") if isinstance(payload, dict) else None
        return parse_line_type(carrier.get("linetype") if isinstance(carrier, dict) else None)


class StaticLineTypes:
    """``LineTypeLookup`` from a table (the sandbox and the simulator): numbers not in it are
    ``default``."""

    def __init__(self, table: Mapping[str, str], default: LineType = LineType.WIRELESS) -> None:
        self._table = {number: parse_line_type(kind) for number, kind in table.items()}
        self._default = default

    async def lookup(self, e164: str) -> LineType:
        return self._table.get(e164, self._default)


class LineTypeCache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl_seconds: float) -> None: ...


class InProcessLineTypeCache:
    """One process's answers, each forgotten ``ttl_seconds`` after it was kept."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[str, float]] = {}

    async def get(self, key: str) -> str | None:
        found = self._entries.get(key)
        if found is None:
            return None
        value, until = found
        if self._clock() >= until:
            del self._entries[key]
            return None
        return value

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        self._entries[key] = (value, self._clock() + ttl_seconds)


class CachedLineTypes:
    """Looks each number up once per ``ttl_seconds``; a failure is ``unknown`` (not cached).

    A cache that fails (Redis down) is skipped, never the call's problem: the lookup is
    made again. Sends to one number at the same moment share one lookup in this process
    (the later ones count as ``cached``): a burst of calls from one phone pays once."""

    def __init__(self, lookup: LineTypeLookup, cache: LineTypeCache, ttl_seconds: float) -> None:
        self._lookup = lookup
        self._cache = cache
        self._ttl = ttl_seconds
        self._in_flight: dict[str, asyncio.Future[LineAnswer]] = {}

    async def line_of(self, e164: str) -> LineAnswer:
        key = cache_key(e164)
        waiting = self._in_flight.get(key)
        if waiting is not None:
            shared = await asyncio.shield(waiting)
            failed = shared.source is LookupSource.FAILED
            return LineAnswer(
                shared.line_type, LookupSource.FAILED if failed else LookupSource.CACHED
            )
        future: asyncio.Future[LineAnswer] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            answer = await self._line_of(key, e164)
        except BaseException:
            future.set_result(LineAnswer(LineType.UNKNOWN, LookupSource.FAILED))
            raise
        else:
            future.set_result(answer)
        finally:
            del self._in_flight[key]
        return answer

    async def _line_of(self, key: str, e164: str) -> LineAnswer:
        try:
            kept = await self._cache.get(key)
        except Exception as exc:
            log.warning("line_type_cache_unavailable", extra={"exc_type": type(exc).__name__})
            kept = None
        if kept is not None:
            return LineAnswer(parse_line_type(kept), LookupSource.CACHED)
        try:
            found = await self._lookup.lookup(e164)
        except LookupFailed as exc:
            log.warning("line_type_lookup_failed", extra={"kind": exc.kind})
            return LineAnswer(LineType.UNKNOWN, LookupSource.FAILED)
        try:
            await self._cache.put(key, str(found), self._ttl)
        except Exception as exc:
            log.warning("line_type_cache_unavailable", extra={"exc_type": type(exc).__name__})
        return LineAnswer(found, LookupSource.LOOKED_UP)


def cache_key(e164: str) -> str:
    """A number is not kept in the clear in a cache: its salted hash names it."""
    return hashlib.sha256(b"mfa-line-type:" + e164.encode()).hexdigest()[:32]
