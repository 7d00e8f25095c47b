"""Cheap checks where two sources of truth exist: the documentation (README.md and the pages
under docs/, found by what they say: tests/support/docs.py) and the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.docs import DOCS, page_holding, pages, text_holding
from tests.support.docs import section as doc_section

REPO = Path(__file__).resolve().parents[1]
ENV_TABLE = "Environment (secrets and deployment facts only):"


def readme_env_table() -> set[str]:
    table = text_holding(ENV_TABLE).split(ENV_TABLE, 1)[1]
    table = table.split("\n\n", 2)[1]  # the table right after the heading line
    return set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", table))


def env_vars_read_by_settings() -> set[str]:
    from agent.config.settings import ENV_VARS

    return {var.name for var in ENV_VARS}


def test_every_env_var_in_the_readme_is_read_by_the_settings():
    documented = readme_env_table()
    assert "SWML_BASIC_AUTH_PASSWORD" in documented
    unknown = sorted(documented - env_vars_read_by_settings())
    where = page_holding(ENV_TABLE).relative_to(REPO)
    assert not unknown, f"{where}'s environment table names {unknown}, which no setting reads"


def test_every_env_var_the_settings_read_is_in_the_readme():
    missing = sorted(env_vars_read_by_settings() - readme_env_table())
    where = page_holding(ENV_TABLE).relative_to(REPO)
    assert not missing, f"{missing} are missing from the environment table of {where}"


def test_the_readmes_configuration_file_names_settings_each_single_quoted():
    """The one file replicas, systemd and ``check`` read: every line a variable the
    settings read, written ``NAME='value'`` as the README asks."""
    marker = "**One file for the configuration.**"
    after = text_holding(marker).split(marker, 1)[1]
    block = after.split("```\n", 2)[1]
    pairs = [line.split("=", 1) for line in block.splitlines()]
    assert len(pairs) >= 10
    assert {name for name, _ in pairs} <= env_vars_read_by_settings()
    assert all(value.startswith("'") and value.endswith("'") for _, value in pairs), pairs
    assert {"SIGNALWIRE_SIGNING_KEY", "MFA_DASHBOARD_PASSWORD", "REDIS_URL"} <= dict(pairs).keys()


def readme_yaml_keys() -> set[str]:
    """Every key the README's YAML paragraph names, ``limits.*`` and ``breaker.*`` included."""
    marker = "YAML (`agent/config.yaml`"
    yaml_part = text_holding(marker).split(marker, 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`([a-z_]+(?:\.(?:[a-z_]+|\*))?)`", yaml_part))


def readme_security_defaults() -> dict[str, str]:
    """``section.key: value`` pairs from the Security table (a bare ``key: value`` right
    after one belongs to the same section, as in ``per_recipient_per_day: 10``)."""
    table = doc_section("Security")
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
            assert any(f.startswith(section + ".") for f in fields), f"the docs name {key}"
        else:
            assert key in fields, f"the docs name `{key}`, which the settings do not have"


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
        assert fields[key] == value, f"{key}: the docs say {text}, the default is {fields[key]}"
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


# The README is a few screens (issue 26): what it is, the two commands, the quick start and a
# map of docs/; the rest is the site. Its links are read on GitHub, where mkdocs checks none.
README_MAX_LINES = 250
LINK = re.compile(r"\]\((?!https?://)([^)#\s]+)?(?:#([^)\s]+))?\)")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub (and MkDocs' toc, for these titles) gives the page's headings."""
    found, fenced = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+?)\s*$", line)):
            found.add(re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-"))
    return found


def test_the_readme_is_a_few_screens_and_maps_every_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert lines[2].startswith("<!-- run: two-commands "), "the two commands come first"
    linked = {(REPO / target).resolve() for target, _ in LINK.findall(readme) if target}
    # The site's home and quick start are the README's own intro and quick start.
    site_only = {DOCS / "index.md", DOCS / "quick-start.md"}
    unmapped = [
        str(page.relative_to(REPO))
        for page in pages()[1:]
        if page not in site_only and page.resolve() not in linked
    ]
    assert not unmapped, f"pages the README's map does not link: {unmapped}"


def test_every_link_of_the_readme_reaches_its_file_and_heading():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for target, anchor in LINK.findall(readme):
        path = (REPO / target) if target else REPO / "README.md"
        assert path.exists(), f"README.md links {target}, which does not exist"
        if anchor:
            assert anchor in anchors(path), f"README.md links {target}#{anchor}: no such heading"
