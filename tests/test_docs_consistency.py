"""Cheap checks where two sources of truth exist: the README and the code."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_env_table() -> set[str]:
    readme = (REPO / "README.md").read_text()
    table = readme.split("Environment (secrets and deployment facts only):", 1)[1]
    table = table.split("\n\n", 2)[1]  # the table right after the heading line
    return set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", table))


def env_vars_read_by_settings() -> set[str]:
    from agent.settings import ENV_VARS

    return {var.name for var in ENV_VARS}


def test_every_env_var_in_the_readme_is_read_by_the_settings():
    documented = readme_env_table()
    assert "SWML_BASIC_AUTH_PASSWORD" in documented
    assert documented <= env_vars_read_by_settings()


def test_every_env_var_the_settings_read_is_in_the_readme():
    assert env_vars_read_by_settings() <= readme_env_table()


def test_every_yaml_section_in_the_readme_exists_in_the_shipped_config():
    from agent.settings import FileConfig

    readme = (REPO / "README.md").read_text()
    yaml_part = readme.split("YAML (`agent/config.yaml`", 1)[1].split("\n\n", 1)[0]
    keys = {k.split(".")[0] for k in re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", yaml_part)}
    assert keys <= set(FileConfig.model_fields)
