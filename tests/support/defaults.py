"""Who the tests are: the operator's basic-auth credentials, the caller, the tool secret."""

AUTH = ("operator", "s3cret-test-password")
CALLER = "+15551230001"
SWAIG_SECRET = "test-swaig-secret"
