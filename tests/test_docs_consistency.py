"""Cheap checks where two sources of truth exist: the README and the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def readme_env_table() -> set[str]:
    readme = (REPO / "README.md").read_text()
    table = readme.split("Environment (secrets and deployment facts only):", 1)[1]
    table = table.split("\n\n", 2)[1]  # the table right after the heading line
    return set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", table))


def env_vars_read_by_settings() -> set[str]:
    from agent.config.settings import ENV_VARS

    return {var.name for var in ENV_VARS}


def test_every_env_var_in_the_readme_is_read_by_the_settings():
    documented = readme_env_table()
    assert "SWML_BASIC_AUTH_PASSWORD" in documented
    assert documented <= env_vars_read_by_settings()


def test_every_env_var_the_settings_read_is_in_the_readme():
    assert env_vars_read_by_settings() <= readme_env_table()


def test_the_readmes_configuration_file_names_settings_each_single_quoted():
    """The one file replicas, systemd and ``check`` read: every line a variable the
    settings read, written ``NAME='value'`` as the README asks."""
    readme = (REPO / "README.md").read_text()
    after = readme.split("**One file for the configuration.**", 1)[1]
    block = after.split("```\n", 2)[1]
    pairs = [line.split("=", 1) for line in block.splitlines()]
    assert len(pairs) >= 10
    assert {name for name, _ in pairs} <= env_vars_read_by_settings()
    assert all(value.startswith("'") and value.endswith("'") for _, value in pairs), pairs
    assert {"SIGNALWIRE_SIGNING_KEY", "MFA_DASHBOARD_PASSWORD", "REDIS_URL"} <= dict(pairs).keys()


def readme_yaml_keys() -> set[str]:
    """Every key the README's YAML paragraph names, ``limits.*`` and ``breaker.*`` included."""
    readme = (REPO / "README.md").read_text()
    yaml_part = readme.split("YAML (`agent/config.yaml`", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([a-z_]+(?:\.(?:[a-z_]+|\*))?)`", yaml_part))


def readme_security_defaults() -> dict[str, str]:
    """``section.key: value`` pairs from the Security table (a bare ``key: value`` right
    after one belongs to the same section, as in ``per_recipient_per_day: 10``)."""
    readme = (REPO / "README.md").read_text()
    table = readme.split("### Security\n", 1)[1].split("\n#", 1)[0]
    found: dict[str, str] = {}
    for row in table.splitlines():
        section = None
        for key, value in re.findall(r"`([a-z_]+(?:\.[a-z_]+)?): ([^`]+)`", row):
            if "." in key:
                section = key.split(".")[0]
            elif section is not None:
                key = f"{section}.{key}"
            else:
                continue
            found[key] = value.strip()
    return found


def config_fields() -> dict[str, Any]:
    """``section.key`` (and top-level ``key``) -> the field's default, from ``FileConfig``."""
    from pydantic import BaseModel

    from agent.config.config_file import FileConfig

    fields: dict[str, Any] = {}
    for name, info in FileConfig.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            for sub, sub_info in type(default).model_fields.items():
                fields[f"{name}.{sub}"] = sub_info.get_default(call_default_factory=True)
        else:
            fields[name] = default
    return fields


def test_every_yaml_key_in_the_readme_exists_in_the_settings():
    fields = config_fields()
    keys = readme_yaml_keys()
    assert {"limits.*", "breaker.*", "code.valid_for", "sandbox_db_path"} <= keys
    for key in keys:
        if key.endswith(".*"):
            section = key[:-2]
            assert any(f.startswith(section + ".") for f in fields), f"README names {key}"
        else:
            assert key in fields, f"README names `{key}`, which the settings do not have"


def test_every_default_the_security_table_states_is_the_real_default():
    fields = config_fields()
    shipped = yaml.safe_load((REPO / "agent" / "config.yaml").read_text())
    stated = readme_security_defaults()
    assert {
        "limits.sends_per_call",
        "limits.per_recipient_per_day",
        "limits.agent_sends_per_minute",
        "breaker.failure_threshold",
        "breaker.open_seconds",
        "code.max_attempts",
    } <= set(stated)
    for key, text in stated.items():
        assert key in fields, f"the Security table names `{key}`, which the settings lack"
        value = yaml.safe_load(text)
        section, _, name = key.partition(".")
        assert fields[key] == value, f"{key}: README says {text}, the default is {fields[key]}"
        assert shipped[section][name] == value, f"{key}: agent/config.yaml ships another value"


def test_the_shipped_config_holds_the_defaults():
    """Every key of agent/config.yaml exists, with the settings' own default. Except the
    languages: the file ships English and Spanish (and a text for each), while a file that
    names none keeps the one English entry and plain English text of earlier releases."""
    fields = config_fields()
    shipped = yaml.safe_load((REPO / "agent" / "config.yaml").read_text())
    assert [entry["code"] for entry in shipped.pop("languages")] == ["en", "es"]
    assert set(shipped["code"].pop("message")) == {"en", "es"}
    for name, value in shipped.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, sub_value in items:
            key = f"{name}.{sub}" if sub else name
            assert key in fields, f"agent/config.yaml has an unknown key {key}"
            assert fields[key] == sub_value, f"{key}: shipped {sub_value}, default {fields[key]}"


def test_help_names_every_environment_variable():
    """`python -m agent --help` is where an operator looks first: it names them all."""
    from agent.cli import USAGE

    missing = sorted(name for name in env_vars_read_by_settings() if name not in USAGE)
    assert not missing, f"--help does not name {missing}"
