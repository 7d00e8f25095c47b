"""Who the tests are: the operator's basic-auth credentials, the dashboard's, the caller,
the tool secret."""

from testkit.fake_signalwire import API_TOKEN, PROJECT_ID

AUTH = ("operator", "s3cret-test-password")
CALLER = "+15551230001"
SWAIG_SECRET = "test-swaig-secret"
#: The dashboard's own pair (/live, /events, /outcomes, /metrics): never the platform's.
DASHBOARD = ("admin", "dashboard-test-password-0123")


def account_on(space_url: str) -> dict[str, str]:
    """The environment of an account on the fake space at ``space_url``, the agent behind a
    proxy on loopback (what a process test passes to ``python -m agent``)."""
    return {
        "MFA_PROVIDER": "signalwire",
        "SIGNALWIRE_PROJECT_ID": PROJECT_ID,
        "SIGNALWIRE_API_TOKEN": API_TOKEN,
        "SIGNALWIRE_SPACE": space_url,
        "MFA_FROM_NUMBER": "+15559870000",
        "MFA_TRUSTED_PROXIES": "127.0.0.1",
    }
