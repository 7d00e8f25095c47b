"""The phone-number lookup the agent asks before a send (``channels``): reachable with the
token. The check asks for the number's formatting only, never ``include=carrier`` (billable),
so it costs nothing."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import httpx

from agent.config.settings import ProviderName, Settings
from agent.ops.preflight.lines import FAIL, OK, CheckLine, bad_status, unreachable


async def check_lookup(settings: Settings, http: httpx.AsyncClient) -> list[CheckLine]:
    account = settings.signalwire
    with_account = settings.provider is ProviderName.SIGNALWIRE
    if account is None or not settings.file.channels.looks_up(with_account=with_account):
        return []
    base = account.base_url.rstrip("/")
    host = urlsplit(base).netloc
    url = f"{base}/api/relay/rest/lookup/phone_number/{quote(account.from_number, safe='+')}"
    try:
        answer = await http.get(
            url, auth=(account.project_id, account.api_token.get_secret_value())
        )
    except httpx.HTTPError as exc:
        return [unreachable("line-type lookup", host, exc, "try again; check SIGNALWIRE_SPACE")]
    if answer.status_code == 200:
        detail = "the phone-number lookup answers: line types are looked up before a send"
        return [CheckLine(OK, "line-type lookup", detail)]
    if answer.status_code in (401, 403):
        return [
            CheckLine(
                FAIL,
                "line-type lookup",
                f"{host} refused the lookup with this token (HTTP {answer.status_code})",
                "check SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN, or set "
                "channels.lookup: false to text without looking the line type up",
            )
        ]
    return [bad_status("line-type lookup", host, answer.status_code)]
