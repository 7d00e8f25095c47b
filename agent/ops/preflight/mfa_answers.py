"""What SignalWire's MFA API may answer to a verify, so that ``check`` reads its probe by the
spec rather than by the one answer a real space happened to give.

``DECLARED`` is the ``responses`` of ``POST /api/relay/rest/mfa/{mfa_request_id}/verify``
(operation ``verify_mfa_token``) in SignalWire's REST OpenAPI, copied here when the spec is
vendored: the product never reads the spec under ``tests/`` (nothing imports tests), and
``tests/process/test_check_reads_the_spec.py`` keeps this table equal to the vendored file.
``DOCUMENTED`` are answers the guides describe but the spec does not declare.
"""

from __future__ import annotations

DECLARED: dict[int, str] = {
    200: "the request has succeeded",
    401: "access is unauthorized",
    422: "the request failed validation",
    500: "an internal server error occurred",
}

# SignalWire's MFA guide: a verify of an unknown, used, expired or exhausted request id.
DOCUMENTED: dict[int, str] = {404: "the request id is unknown, used or expired"}

# Answers that say the credentials or the token's scope were refused (403: a token
# without the scope, which the spec folds into 401).
REFUSED = frozenset({401, 403})
SERVER_ERROR = frozenset(status for status in DECLARED if status >= 500)


def reached_the_api(status: int) -> bool:
    """Whether ``status`` is an answer the MFA API gives only past authentication: any
    declared or documented answer but a refusal."""
    return status in (DECLARED.keys() | DOCUMENTED.keys()) and status not in REFUSED
