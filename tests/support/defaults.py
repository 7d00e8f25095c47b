"""Who the tests are: the operator's basic-auth credentials, the dashboard's, the caller,
the tool secret."""

AUTH = ("operator", "s3cret-test-password")
CALLER = "+15551230001"
SWAIG_SECRET = "test-swaig-secret"
#: The dashboard's own pair (/live, /events, /outcomes, /metrics): never the platform's.
DASHBOARD = ("admin", "dashboard-test-password-0123")
