"""The configuration, the SignalWire space and its token's scopes, and the signing key."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx

from agent.config.settings import ProviderName, Settings, SettingsError
from agent.ops.preflight.lines import FAIL, OK, WARN, CheckLine, bad_status, unreachable
from agent.ops.preflight.mfa_answers import REFUSED, SERVER_ERROR, reached_the_api
from skills.mfa.delivery.providers.signalwire import SPACE_FORMS

MFA_SCOPE_HINT = (
    "the API token needs the Management scope for SignalWire's MFA API (its reference lists "
    "it on /mfa/sms and /mfa/{id}/verify): edit the token's scopes in the dashboard "
    "(API > Tokens) or create one with it"
)

# The space took the project id and token but not for this API: the token's scope is the
# fix, so the line leads with it (a 401 may be either: a wrong pair or the scope).
LACKS_SCOPE = 403


def check_configuration(settings: Settings) -> CheckLine:
    from agent.app import build_agent  # the composition root: only what the agent needs

    try:
        build_agent(settings)
    except SettingsError as exc:
        return CheckLine(FAIL, "configuration", str(exc))
    if settings.provider is ProviderName.SANDBOX:
        why = (
            " beside an account (MFA_SANDBOX_WITH_ACCOUNT=1)"
            if settings.sandbox_with_account
            else ""
        )
        return CheckLine(
            OK, "configuration", f"valid; sandbox provider{why}: codes are not texted to phones"
        )
    assert settings.signalwire is not None
    host = urlsplit(settings.signalwire.base_url).netloc
    return CheckLine(OK, "configuration", f"valid; SignalWire provider on {host}")


async def check_space(settings: Settings, http: httpx.AsyncClient) -> list[CheckLine]:
    """The space answers, takes the credentials, and owns MFA_FROM_NUMBER."""
    account = settings.signalwire
    if account is None:
        return []
    base = account.base_url.rstrip("/")
    host = urlsplit(base).netloc
    auth = (account.project_id, account.api_token.get_secret_value())
    number = account.from_number
    try:
        listed = await http.get(
            f"{base}/api/relay/rest/phone_numbers",
            params={"filter_number": number, "page_size": 20},
            auth=auth,
        )
    except httpx.HTTPError as exc:
        return [unreachable("space", host, exc, f"is SIGNALWIRE_SPACE {SPACE_FORMS}?")]
    if listed.status_code == 200:
        space = CheckLine(OK, "space", f"{host} answers and accepts the project id and API token")
        return [space, await _mfa_scope(http, base, host, auth), _number_owned(listed, number)]
    if listed.status_code in (401, 403):
        scope = await _mfa_scope(http, base, host, auth)
        if scope.status == FAIL:
            return [scope]
        unknown = CheckLine(
            WARN,
            "from number",
            f"cannot check that {number} is this project's: the token may not read phone "
            f"numbers (HTTP {listed.status_code}; that needs the Numbers scope, which "
            "texting does not)",
        )
        return [scope, unknown]
    return [bad_status("space", host, listed.status_code)]


async def _mfa_scope(
    http: httpx.AsyncClient, base: str, host: str, auth: tuple[str, str]
) -> CheckLine:
    """A verify of a random, unknown request id, read by SignalWire's spec: every answer it
    declares (or its guide documents: 404) but a refusal comes from past the token's scope
    check, so it proves the scope; a server error proves it too, but is worth a warning."""
    try:
        answer = await http.post(
            f"{base}/api/relay/rest/mfa/{uuid.uuid4()}/verify",
            json={"token": "000000"},
            auth=auth,
        )
    except httpx.HTTPError as exc:
        return unreachable("MFA API", host, exc, "try again; check SIGNALWIRE_SPACE")
    status = answer.status_code
    if status in SERVER_ERROR:
        return CheckLine(
            WARN,
            "MFA API",
            f"the token is accepted by the MFA API (scope Management), but {host} answered "
            f"HTTP {status} to a verify",
            "try again; if it persists, look at SignalWire's status page",
        )
    if reached_the_api(status):
        return CheckLine(OK, "MFA API", "the token is accepted by the MFA API (scope Management)")
    if status == LACKS_SCOPE:
        return CheckLine(
            FAIL,
            "MFA API",
            "the API token lacks the Management scope that SignalWire's MFA API needs "
            f"(HTTP {status} from {host})",
            "in the dashboard (API > Tokens) give this token the Management scope, or create "
            "one with it and set SIGNALWIRE_API_TOKEN",
        )
    if status in REFUSED:
        return CheckLine(
            FAIL,
            "MFA API",
            f"{host} refused the project id and API token (HTTP {status})",
            "check SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN (Dashboard > API); "
            + MFA_SCOPE_HINT,
        )
    return bad_status("MFA API", host, status)


def _number_owned(listed: httpx.Response, number: str) -> CheckLine:
    try:
        data = listed.json().get("data")
    except (ValueError, AttributeError):
        data = None
    if not isinstance(data, list):
        return CheckLine(WARN, "from number", "the space's number list could not be read")
    numbers = {item.get("number") for item in data if isinstance(item, dict)}
    if number in numbers:
        return CheckLine(OK, "from number", f"{number} is a number of this project")
    return CheckLine(
        FAIL,
        "from number",
        f"{number} is not a number of this project",
        "set MFA_FROM_NUMBER to a number you bought or ported into this project (Dashboard > "
        "Phone Numbers): a custom text needs your own number",
    )


def check_signing_key(settings: Settings) -> CheckLine | None:
    if settings.signing_key is not None:
        return CheckLine(OK, "signing key", "set: unsigned webhooks are refused")
    if settings.signing_key_optional:
        return CheckLine(
            WARN,
            "signing key",
            "not set: allowed only because the space is on this machine; a real space "
            "requires SIGNALWIRE_SIGNING_KEY",
        )
    if settings.provider is ProviderName.SANDBOX:
        return CheckLine(WARN, "signing key", "not set: unsigned webhooks are accepted (sandbox)")
    return None  # an account without the key does not load: the configuration line said so
