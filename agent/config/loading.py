"""The YAML file read and any settings model validated, their errors made one line.

``load_settings`` (``agent/config/settings.py``) reads the environment and this file into
one ``Settings``; a mistake in either ends start-up with a ``SettingsError`` that names
the key or variable at fault and, for the file, its fix (``agent/config/file_errors.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agent.config.config_file import FileConfig
from agent.config.file_errors import explain, yaml_problem

M = TypeVar("M", bound=BaseModel)


class SettingsError(ValueError):
    """Start-up configuration is wrong; the message names the offending key."""


def load_file_config(path: Path) -> FileConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"MFA_AGENT_CONFIG: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: the top level must be a mapping of keys to values")
    return validated(FileConfig, data, {}, prefix=f"{path}: ", from_file=True)


def validated(
    model: type[M],
    data: dict[str, Any],
    names: Mapping[str, str],
    prefix: str = "",
    *,
    from_file: bool = False,
) -> M:
    """``from_file``: the YAML file's errors are worded as their fix (its values are not
    secret, so one may be quoted back); the environment's never show their input."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=from_file, include_url=False):
            ours = str(error["ctx"]["error"]) if error["type"] == "value_error" else None
            if ours is None and from_file:
                ours = explain(model, error)
            if not error["loc"] and ours is not None:
                # A cross-field rule: its message names the variables itself.
                problems.append(ours)
                continue
            dotted = ".".join(str(part) for part in error["loc"]) or "settings"
            key = names.get(dotted, dotted)
            problems.append(f"{key}: {ours if ours is not None else error['msg']}")
        raise SettingsError(prefix + "; ".join(problems)) from None
