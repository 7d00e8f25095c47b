"""``load_settings``: defaults, provider choice, secrets kept secret, and every bad value
stopping start-up with a message that names the key.

Every test passes an explicit environment dict; ``os.environ`` is never read.
"""

from __future__ import annotations

import typing
from pathlib import Path
from types import NoneType
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from agent.config.config_file import CodeConfig, FileConfig, code_policy_warnings
from agent.config.settings import (
    DEFAULT_CONFIG_PATH,
    ENV_VARS,
    ProviderName,
    Settings,
    SettingsError,
    load_settings,
)

PROJECT_ID = "a1b2c3d4-proj-9e8f-7a6b-5c4d3e2f1a0b"
API_TOKEN = "PTsecret0123456789abcdefTOKEN"
PASSWORD = "s3cret-basic-auth-PASSWORD"

ACCOUNT = {
    "SIGNALWIRE_PROJECT_ID": PROJECT_ID,
    "SIGNALWIRE_API_TOKEN": API_TOKEN,
    "SIGNALWIRE_SPACE": "example.signalwire.com",
    "MFA_FROM_NUMBER": "+15559870000",
}
# What else an account needs to start: a public URL for the webhooks.
SIGNING_KEY = {"SIGNALWIRE_SIGNING_KEY": "PSKsigning0123456789abcdef"}
CREDENTIALS = {
    **ACCOUNT,
    **SIGNING_KEY,
    "SWML_PROXY_URL_BASE": "https://agent.example.com",
    "SWML_BASIC_AUTH_PASSWORD": PASSWORD,
}


def write_yaml(tmp_path: Path, data: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def env_with(config: Path | None = None, **env: str) -> dict[str, str]:
    environ = {"MFA_AGENT_CONFIG": str(config)} if config else {}
    environ.update(env)
    return environ


def settings_error(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(environ)
    return str(info.value)


# -- defaults and the shipped file -----------------------------------------------------------


def test_defaults_from_the_shipped_file() -> None:
    settings = load_settings({})
    assert settings.config_path == DEFAULT_CONFIG_PATH
    code = settings.file.code
    assert code.token_length == 6
    assert code.valid_for == 600
    assert code.max_attempts == 3
    assert code.allow_other_numbers is False
    assert settings.host == "0.0.0.0"
    assert settings.port == 3000
    assert settings.proxy_url_base is None
    assert settings.swaig_secret is None
    assert settings.signing_key is None


def test_no_credentials_falls_back_to_sandbox() -> None:
    settings = load_settings({})
    assert settings.provider is ProviderName.SANDBOX
    assert settings.provider_fell_back is True
    assert settings.signalwire is None


@pytest.mark.parametrize("missing", list(ACCOUNT))
def test_partial_account_stops_naming_what_is_missing(missing: str) -> None:
    """Fail closed: a production number must never answer on the sandbox by accident."""
    environ = dict(CREDENTIALS)
    del environ[missing]
    message = settings_error(environ)
    assert message.startswith(f"incomplete SignalWire account: it needs {missing} (")
    assert API_TOKEN not in message


def test_partial_account_names_each_missing_and_empty_variable() -> None:
    environ = {"SIGNALWIRE_PROJECT_ID": PROJECT_ID, "SIGNALWIRE_API_TOKEN": "  "}
    assert settings_error(environ) == (
        "incomplete SignalWire account: it needs SIGNALWIRE_API_TOKEN (set but empty), "
        "SIGNALWIRE_SPACE, MFA_FROM_NUMBER (an account needs all of SIGNALWIRE_PROJECT_ID, "
        "SIGNALWIRE_API_TOKEN, SIGNALWIRE_SPACE, MFA_FROM_NUMBER; for the sandbox set none of "
        "them)"
    )


@pytest.mark.parametrize("name", list(ACCOUNT))
def test_one_empty_account_variable_stops_start_up(name: str) -> None:
    message = settings_error({name: ""})
    assert f"{name} (set but empty)" in message


def test_sandbox_beside_one_account_variable_stops_start_up_naming_it() -> None:
    assert settings_error({"SIGNALWIRE_PROJECT_ID": PROJECT_ID, "MFA_PROVIDER": "sandbox"}) == (
        "MFA_PROVIDER=sandbox with SignalWire account variables set (SIGNALWIRE_PROJECT_ID): "
        "codes would go to the log, never to the caller's phone. Unset MFA_PROVIDER to use the "
        "account, unset those variables for the sandbox, or set MFA_SANDBOX_WITH_ACCOUNT=1 to "
        "run the sandbox beside them on purpose"
    )


def test_credentials_select_signalwire() -> None:
    settings = load_settings(dict(CREDENTIALS))
    assert settings.provider is ProviderName.SIGNALWIRE
    assert settings.provider_fell_back is False
    assert settings.signalwire is not None
    assert settings.signalwire.project_id == PROJECT_ID
    assert settings.signalwire.api_token.get_secret_value() == API_TOKEN
    assert settings.signalwire.base_url == "https://example.signalwire.com"
    assert settings.signalwire.from_number == "+15559870000"


def test_credentials_are_stripped() -> None:
    environ = {**CREDENTIALS, **{key: f"  {value}\n" for key, value in ACCOUNT.items()}}
    settings = load_settings(environ)
    assert settings.signalwire is not None
    assert settings.signalwire.project_id == PROJECT_ID
    assert settings.signalwire.api_token.get_secret_value() == API_TOKEN
    assert settings.signalwire.from_number == "+15559870000"


def test_explicit_signalwire_provider() -> None:
    settings = load_settings({**CREDENTIALS, "MFA_PROVIDER": " SignalWire "})
    assert settings.provider is ProviderName.SIGNALWIRE
    assert settings.provider_fell_back is False


def test_sandbox_beside_a_whole_account_stops_start_up_naming_every_variable() -> None:
    message = settings_error({**CREDENTIALS, "MFA_PROVIDER": "sandbox"})
    assert message.startswith(
        "MFA_PROVIDER=sandbox with SignalWire account variables set (SIGNALWIRE_PROJECT_ID, "
        "SIGNALWIRE_API_TOKEN, SIGNALWIRE_SPACE, MFA_FROM_NUMBER): "
    )
    assert API_TOKEN not in message


@pytest.mark.parametrize("flag", ["1", "true", "YES", "on"])
def test_sandbox_beside_an_account_on_purpose(flag: str) -> None:
    settings = load_settings(
        {**CREDENTIALS, "MFA_PROVIDER": "sandbox", "MFA_SANDBOX_WITH_ACCOUNT": flag}
    )
    assert settings.provider is ProviderName.SANDBOX
    assert settings.sandbox_with_account is True
    assert settings.signalwire is None


@pytest.mark.parametrize("flag", ["0", "false", "no"])
def test_sandbox_with_account_flag_off_still_stops(flag: str) -> None:
    environ = {**CREDENTIALS, "MFA_PROVIDER": "sandbox", "MFA_SANDBOX_WITH_ACCOUNT": flag}
    assert settings_error(environ).startswith("MFA_PROVIDER=sandbox with SignalWire account")


def test_a_bad_sandbox_with_account_flag_names_the_variable() -> None:
    environ = {**CREDENTIALS, "MFA_PROVIDER": "sandbox", "MFA_SANDBOX_WITH_ACCOUNT": "maybe"}
    assert "MFA_SANDBOX_WITH_ACCOUNT" in settings_error(environ)


# -- the signing key: required off loopback -----------------------------------------------------


def test_an_account_on_a_real_space_needs_the_signing_key() -> None:
    environ = {k: v for k, v in CREDENTIALS.items() if k != "SIGNALWIRE_SIGNING_KEY"}
    assert settings_error(environ) == (
        "SIGNALWIRE_SIGNING_KEY is required with a SignalWire account: SignalWire signs every "
        "webhook, and without the key anyone holding the basic-auth pair could post a whole "
        "fabricated call. Copy the Signing Key from your space's API page "
        "(Dashboard > API > Signing Key)"
    )


@pytest.mark.parametrize("space", ["http://127.0.0.1:9000", "https://localhost:9443"])
def test_a_loopback_space_may_run_without_the_signing_key(space: str) -> None:
    environ = {k: v for k, v in CREDENTIALS.items() if k != "SIGNALWIRE_SIGNING_KEY"}
    settings = load_settings({**environ, "SIGNALWIRE_SPACE": space})
    assert settings.signing_key is None
    assert settings.signing_key_optional is True


def test_with_the_key_nothing_is_optional() -> None:
    assert load_settings(dict(CREDENTIALS)).signing_key_optional is False


def test_unknown_provider_is_refused() -> None:
    message = settings_error({**CREDENTIALS, "MFA_PROVIDER": "bogus"})
    assert "MFA_PROVIDER" in message


def test_signalwire_without_credentials_is_refused() -> None:
    message = settings_error({"MFA_PROVIDER": "signalwire"})
    assert "MFA_PROVIDER" in message
    for name in ACCOUNT:
        assert name in message


@pytest.mark.parametrize(
    "missing", ["SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_API_TOKEN", "SIGNALWIRE_SPACE"]
)
def test_signalwire_with_one_credential_missing_names_it(missing: str) -> None:
    environ = {**CREDENTIALS, "MFA_PROVIDER": "signalwire"}
    environ[missing] = ""
    message = settings_error(environ)
    assert missing in message
    assert API_TOKEN not in message


def test_signalwire_without_from_number_names_it() -> None:
    environ = dict(CREDENTIALS)
    del environ["MFA_FROM_NUMBER"]
    message = settings_error(environ)
    assert "MFA_FROM_NUMBER" in message


def test_env_overrides() -> None:
    settings = load_settings(
        {
            "HOST": "127.0.0.1",
            "PORT": "8080",
            "SWML_PROXY_URL_BASE": "https://agent.example.com/",
            "SIGNALWIRE_SWAIG_SECRET": "swaig-secret",
            "SIGNALWIRE_SIGNING_KEY": "signing-key",
        }
    )
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.proxy_url_base == "https://agent.example.com"
    assert settings.swaig_secret is not None
    assert settings.swaig_secret.get_secret_value() == "swaig-secret"
    assert settings.signing_key is not None
    assert settings.signing_key.get_secret_value() == "signing-key"


# -- basic auth and secrets ------------------------------------------------------------------


def test_generated_basic_auth_password() -> None:
    first = load_settings({})
    second = load_settings({})
    assert first.basic_auth_generated is True
    assert first.basic_auth_user == "mfa"
    password = first.basic_auth_password.get_secret_value()
    assert password
    assert len(password) >= 16
    assert password != second.basic_auth_password.get_secret_value()


def test_given_basic_auth_is_kept() -> None:
    settings = load_settings(
        {"SWML_BASIC_AUTH_USER": "operator", "SWML_BASIC_AUTH_PASSWORD": PASSWORD}
    )
    assert settings.basic_auth_generated is False
    assert settings.basic_auth_user == "operator"
    assert settings.basic_auth_password.get_secret_value() == PASSWORD


def test_secrets_are_secret_str() -> None:
    settings = load_settings(
        {
            **CREDENTIALS,
            "SWML_BASIC_AUTH_PASSWORD": PASSWORD,
            "SIGNALWIRE_SWAIG_SECRET": "swaig-secret-value",
            "SIGNALWIRE_SIGNING_KEY": "signing-key-value",
        }
    )
    assert isinstance(settings.basic_auth_password, SecretStr)
    assert settings.signalwire is not None
    assert isinstance(settings.signalwire.api_token, SecretStr)
    for text in (repr(settings), str(settings), repr(settings.signalwire), str(settings.file)):
        assert API_TOKEN not in text
        assert PASSWORD not in text
        assert "swaig-secret-value" not in text
        assert "signing-key-value" not in text
    generated = load_settings({})
    secret = generated.basic_auth_password.get_secret_value()
    assert secret not in repr(generated)
    assert secret not in str(generated)


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(ValueError):
        settings.port = 1  # type: ignore[misc]


# -- bad values name their key ---------------------------------------------------------------


@pytest.mark.parametrize(
    "code, key",
    [
        ({"token_length": 3}, "token_length"),
        ({"token_length": 21}, "token_length"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 21}, "max_attempts"),
        ({"valid_for": 10**7}, "valid_for"),
        ({"valid_for": 29}, "valid_for"),
        ({"token_length": "six"}, "token_length"),
        ({"message": ""}, "message"),
        ({"tokn_length": 6}, "tokn_length"),
    ],
)
def test_bad_code_values_name_the_key(tmp_path: Path, code: dict[str, Any], key: str) -> None:
    config = write_yaml(tmp_path, {"code": code})
    message = settings_error(env_with(config))
    assert f"code.{key}" in message
    assert str(config) in message


@pytest.mark.parametrize(
    "data, key",
    [
        ({"agent_nmae": "x"}, "agent_nmae"),
        ({"upstream": {"deadline_seconds": 30}}, "upstream.deadline_seconds"),
        ({"upstream": {"max_connections": 0}}, "upstream.max_connections"),
        ({"dtmf": {"digit_timeout_ms": 10}}, "dtmf.digit_timeout_ms"),
        ({"agent_name": "has spaces"}, "agent_name"),
        ({"sandbox_db_path": "  "}, "sandbox_db_path"),
        ({"language": {"voice": "x", "speed": 2}}, "language.speed"),
    ],
)
def test_other_bad_file_values_name_the_key(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    message = settings_error(env_with(write_yaml(tmp_path, data)))
    assert key in message


def test_several_problems_are_all_named(tmp_path: Path) -> None:
    config = write_yaml(tmp_path, {"code": {"token_length": 3, "max_attempts": 0}})
    message = settings_error(env_with(config))
    assert "code.token_length" in message
    assert "code.max_attempts" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    config = write_yaml(tmp_path, text)
    message = settings_error(env_with(config))
    assert str(config) in message
    assert "mapping" in message


def test_invalid_yaml_says_the_line(tmp_path: Path) -> None:
    config = write_yaml(tmp_path, "code:\n  token_length: 6\n  valid_for: [600\nagent_name: x\n")
    message = settings_error(env_with(config))
    assert str(config) in message
    assert "line" in message
    assert "not valid YAML" in message


def test_missing_config_file(tmp_path: Path) -> None:
    config = tmp_path / "nope.yaml"
    message = settings_error(env_with(config))
    assert "MFA_AGENT_CONFIG" in message
    assert str(config) in message


def test_empty_config_file_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(env_with(write_yaml(tmp_path, "")))
    assert settings.file == FileConfig()


def test_partial_config_file_keeps_other_defaults(tmp_path: Path) -> None:
    config = write_yaml(tmp_path, {"code": {"token_length": 8}, "persona_name": "Ada"})
    settings = load_settings(env_with(config))
    assert settings.config_path == config
    assert settings.file.code.token_length == 8
    assert settings.file.code.valid_for == 600
    assert settings.file.persona_name == "Ada"


@pytest.mark.parametrize("number", ["5551234", "15559870000", "+1 555 987 0000", "+1555", "abc"])
def test_from_number_must_be_e164(number: str) -> None:
    message = settings_error({**CREDENTIALS, "MFA_FROM_NUMBER": number})
    assert "MFA_FROM_NUMBER" in message


@pytest.mark.parametrize("port", ["abc", "0", "70000", "-1"])
def test_bad_port(port: str) -> None:
    assert "PORT" in settings_error({"PORT": port})


@pytest.mark.parametrize("url", ["not a url", "agent.example.com", "ftp://agent.example.com"])
def test_bad_proxy_url_base(url: str) -> None:
    assert "SWML_PROXY_URL_BASE" in settings_error({"SWML_PROXY_URL_BASE": url})


def test_a_proxy_url_base_with_credentials_is_refused_without_quoting_them() -> None:
    message = settings_error(
        {"SWML_PROXY_URL_BASE": "https://mfa:hunter2-secret@agent.example.com"}
    )
    assert "SWML_PROXY_URL_BASE" in message and "must not carry credentials" in message
    assert "hunter2-secret" not in message


@pytest.mark.parametrize("token", ["changeme", "ChangeMe", " password ", "xxx"])
def test_placeholder_api_token(token: str) -> None:
    message = settings_error({**CREDENTIALS, "SIGNALWIRE_API_TOKEN": token})
    assert "SIGNALWIRE_API_TOKEN" in message
    assert token.strip() not in message.lower().replace("signalwire_api_token", "")


@pytest.mark.parametrize(
    "space, base_url",
    [
        ("example", "https://example.signalwire.com"),
        ("example.signalwire.com", "https://example.signalwire.com"),
        ("example.signalwire.com/", "https://example.signalwire.com"),
        ("https://example.signalwire.com", "https://example.signalwire.com"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ],
)
def test_signalwire_space_forms(space: str, base_url: str) -> None:
    settings = load_settings({**CREDENTIALS, "SIGNALWIRE_SPACE": space})
    assert settings.signalwire is not None
    assert settings.signalwire.base_url == base_url


@pytest.mark.parametrize(
    "space", ["ftp://x", "https://", "exa mple", "example/path", "example:443"]
)
def test_bad_signalwire_space(space: str) -> None:
    message = settings_error({**CREDENTIALS, "SIGNALWIRE_SPACE": space})
    assert "SIGNALWIRE_SPACE" in message


def test_error_messages_never_hold_the_token() -> None:
    for environ in (
        {**CREDENTIALS, "MFA_FROM_NUMBER": "5551234"},
        {**CREDENTIALS, "SIGNALWIRE_SPACE": "ftp://x"},
        {**CREDENTIALS, "PORT": "abc"},
    ):
        message = settings_error(environ)
        assert API_TOKEN not in message


# -- consistency of the shipped file ---------------------------------------------------------


def _assert_keys_are_fields(data: dict[str, Any], model: type[BaseModel], where: str) -> None:
    for key, value in data.items():
        assert key in model.model_fields, f"{where}{key} is not a field of {model.__name__}"
        annotation = model.model_fields[key].annotation
        if isinstance(value, dict) and not _is_model(annotation):
            # A mapping of free keys (code.message: a template per language code).
            origins = [typing.get_origin(arg) for arg in typing.get_args(annotation)]
            takes = typing.get_origin(annotation) is dict or dict in origins
            assert takes, f"{where}{key} takes no mapping"
        elif isinstance(value, dict):
            _assert_keys_are_fields(value, annotation, f"{where}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            (item,) = typing.get_args(annotation)  # languages: a list of models
            for index, entry in enumerate(value):
                _assert_keys_are_fields(entry, item, f"{where}{key}[{index}].")


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def test_shipped_config_loads_and_every_key_is_a_field() -> None:
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    _assert_keys_are_fields(data, FileConfig, "")

    settings = load_settings({"MFA_AGENT_CONFIG": str(DEFAULT_CONFIG_PATH)})
    assert isinstance(settings, Settings)
    # What the file says is what was loaded (no key silently ignored).
    assert settings.file.model_dump(include=set(data), exclude_unset=True) == data


def test_shipped_config_matches_the_model_defaults() -> None:
    """The file documents the defaults: it and the model must not drift apart."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    defaults = FileConfig().model_dump()
    # Except the languages: the file ships English and Spanish, while a file that names no
    # languages keeps the one English entry (and plain English text) of earlier releases.
    shipped_languages = data.pop("languages")
    assert [entry["code"] for entry in shipped_languages] == ["en", "es"]
    assert set(data["code"].pop("message")) == {"en", "es"}
    assert defaults["code"].pop("message") == FileConfig().message_templates["en-US"]
    for key, value in data.items():
        assert defaults[key] == value, key


# -- the table of environment variables ------------------------------------------------------


def _field(path: str) -> Any:
    model: Any = Settings
    *parents, leaf = path.split(".")
    for parent in parents:
        model = next(
            arg for arg in get_args(model.model_fields[parent].annotation) if arg is not NoneType
        )
    return model.model_fields[leaf]


def test_every_env_var_fills_a_field_and_secrets_are_secret_str() -> None:
    for var in ENV_VARS:
        annotation = _field(var.field).annotation
        is_secret = annotation is SecretStr or SecretStr in get_args(annotation)
        assert is_secret == var.secret, var.name


def test_cross_field_rules_speak_in_env_vars() -> None:
    assert settings_error({"MFA_PROVIDER": "signalwire"}) == (
        "MFA_PROVIDER=signalwire needs SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN, "
        "SIGNALWIRE_SPACE, MFA_FROM_NUMBER"
    )
    assert settings_error({"MFA_OUTCOME_WEBHOOK_URL": "https://hooks.example.com/mfa"}) == (
        "MFA_OUTCOME_WEBHOOK_SECRET is required when MFA_OUTCOME_WEBHOOK_URL is set "
        "(outcomes are signed with it)"
    )


def test_bad_redis_url_names_it() -> None:
    assert "REDIS_URL" in settings_error({"REDIS_URL": "http://127.0.0.1:6379"})


# -- an account fails closed ------------------------------------------------------------------


@pytest.mark.parametrize(
    "space",
    [
        "http://example.signalwire.com",
        "http://10.0.0.5:9000",
        "http://127.0.0.1.example.com",
    ],
)
def test_plain_http_space_is_for_loopback_only(space: str) -> None:
    message = settings_error({**CREDENTIALS, "SIGNALWIRE_SPACE": space})
    assert message.startswith("SIGNALWIRE_SPACE: http:// is only for a test server on this machine")


@pytest.mark.parametrize(
    "space, base_url",
    [
        ("http://127.0.0.2:9000", "http://127.0.0.2:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("http://localhost:9000", "http://localhost:9000"),
    ],
)
def test_plain_http_space_on_loopback_is_accepted(space: str, base_url: str) -> None:
    settings = load_settings({**CREDENTIALS, "SIGNALWIRE_SPACE": space})
    assert settings.signalwire is not None
    assert settings.signalwire.base_url == base_url


@pytest.mark.parametrize(
    "space",
    [
        "https://example.signalwire.com/api/relay/rest",
        "https://example.signalwire.com/x",
        "http://127.0.0.1:9000/prefix",
        "https://example.signalwire.com?x=1",
        "https://user:pw@example.signalwire.com",
        "wss://example.signalwire.com",
        "example.signalwire.com:8443",
        "example.signalwire.com.evil.example",
        "example.com",
        "my space",
        "exa mple.signalwire.com",
        "-example",
    ],
)
def test_anything_but_the_accepted_space_forms_stops_start_up_naming_them(space: str) -> None:
    assert settings_error({**CREDENTIALS, "SIGNALWIRE_SPACE": space}) == (
        "SIGNALWIRE_SPACE: must be your space's name or URL: example, example.signalwire.com "
        "or https://example.signalwire.com (http://127.0.0.1:PORT only for a test server on "
        "this machine)"
    )


@pytest.mark.parametrize(
    "space",
    [
        "example",
        " example ",
        "EXAMPLE",
        "example.signalwire.com",
        "example.signalwire.com/",
        "https://example.signalwire.com",
        "https://example.signalwire.com/",
        "HTTPS://Example.SignalWire.com/",
    ],
)
def test_the_space_as_people_write_it_means_one_space(space: str) -> None:
    settings = load_settings({**CREDENTIALS, "SIGNALWIRE_SPACE": space})
    assert settings.signalwire is not None
    assert settings.signalwire.base_url == "https://example.signalwire.com"


@pytest.mark.parametrize("password", ["Qz", "fifteen-chars15"])
def test_short_password_with_an_account_is_refused(password: str) -> None:
    message = settings_error({**CREDENTIALS, "SWML_BASIC_AUTH_PASSWORD": password})
    assert message.startswith(
        "SWML_BASIC_AUTH_PASSWORD must be at least 16 characters with a SignalWire account"
    )
    assert password not in message.replace("SWML_BASIC_AUTH_PASSWORD", "")


def test_short_password_without_an_account_is_kept() -> None:
    settings = load_settings({"SWML_BASIC_AUTH_PASSWORD": "p"})
    assert settings.basic_auth_password.get_secret_value() == "p"


def test_missing_password_with_an_account_stops_start_up() -> None:
    """With an account the platform's password is the operator's: a generated one would
    differ between replicas and at every restart, and hide an env file that never set it."""
    environ = {k: v for k, v in CREDENTIALS.items() if k != "SWML_BASIC_AUTH_PASSWORD"}
    assert settings_error(environ).startswith(
        "SWML_BASIC_AUTH_PASSWORD is required with a SignalWire account (at least 16 characters"
    )


def test_sandbox_beside_an_account_still_generates_the_password() -> None:
    environ = {k: v for k, v in CREDENTIALS.items() if k != "SWML_BASIC_AUTH_PASSWORD"}
    settings = load_settings(
        {**environ, "MFA_PROVIDER": "sandbox", "MFA_SANDBOX_WITH_ACCOUNT": "1"}
    )
    assert settings.basic_auth_generated is True


@pytest.mark.parametrize(
    ("character", "named"),
    [("\r", "a carriage return"), ("\n", "a line break"), ("\x1b", "U+001B")],
)
def test_a_control_character_in_a_value_stops_start_up(character: str, named: str) -> None:
    message = settings_error({**CREDENTIALS, "SWML_BASIC_AUTH_PASSWORD": PASSWORD + character})
    assert message.startswith("SWML_BASIC_AUTH_PASSWORD: the value holds ")
    assert named in message
    assert PASSWORD not in message


def test_account_without_a_public_url_is_refused() -> None:
    assert settings_error({**ACCOUNT, **SIGNING_KEY, "SWML_BASIC_AUTH_PASSWORD": PASSWORD}) == (
        "SWML_PROXY_URL_BASE is required with a SignalWire account: the public https URL "
        "SignalWire reaches (e.g. https://agent.example.com), or name your reverse proxy in "
        "MFA_TRUSTED_PROXIES to take the host from it"
    )


def test_account_behind_a_named_proxy_starts() -> None:
    settings = load_settings(
        {
            **ACCOUNT,
            **SIGNING_KEY,
            "SWML_BASIC_AUTH_PASSWORD": PASSWORD,
            "MFA_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/24",
        }
    )
    assert settings.provider is ProviderName.SIGNALWIRE
    assert settings.proxy_url_base is None


def test_bad_trusted_proxy_names_the_variable() -> None:
    assert settings_error({"MFA_TRUSTED_PROXIES": "10.0.0.1, proxy.local"}) == (
        "MFA_TRUSTED_PROXIES: 'proxy.local' is not an IP address or network "
        "(e.g. 127.0.0.1, 10.0.0.0/24)"
    )


# -- NIST SP 800-63B: a weaker policy is allowed, with a warning ----------------------------------


def test_default_code_policy_meets_nist() -> None:
    assert code_policy_warnings(load_settings({}).file.code) == []


def test_weak_code_policy_names_each_key_and_rule() -> None:
    code = CodeConfig(token_length=4, valid_for=3600)
    assert code_policy_warnings(code) == [
        (
            "code.token_length",
            "4 digits is fewer than the 6 NIST SP 800-63B requires for an out-of-band code",
        ),
        (
            "code.valid_for",
            "3600 s is longer than the 600 s (10 minutes) NIST SP 800-63B allows for an "
            "out-of-band code",
        ),
    ]
