"""The YAML file's mistakes, worded as their fix.

Pydantic's own words name the rule a value broke ("Input should be a valid integer,
unable to parse string as an integer", "Extra inputs are not permitted") and PyYAML's
name the parser's state; an operator who wrote ``valid_for: 10m`` or ``max_attemps: 5``
or indented one line too far needs what to write instead:

- a duration written with a unit, in a key counted in one: ``a number of seconds, e.g.
  600 for 10m``;
- a misspelt key: ``not a setting here; did you mean max_attempts?`` (the closest keys
  the model at that place has, by ``difflib``);
- YAML that does not parse: the line and column of the problem, and what to look at.

Only for the settings file: its values are not secret (secrets come from the environment
only), so a value the operator wrote may be quoted back.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

_NUMBER_ERRORS = frozenset({"int_parsing", "float_parsing", "int_type", "float_type"})
_UNKNOWN_KEY = "extra_forbidden"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)\s*$", re.IGNORECASE)
_SECONDS_IN = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
# A key's unit, by how its name ends (valid_for is SignalWire's own name for seconds).
_UNITS = (("_ms", "milliseconds", 0.001), ("_seconds", "seconds", 1), ("valid_for", "seconds", 1))
_UNITS += (("_hours", "hours", 3600), ("_days", "days", 86400))


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``not valid YAML at line 3, column 14: mapping values are not allowed here; ...``."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return "not valid YAML"
    problem = getattr(exc, "problem", None) or "cannot be read"
    return (
        f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}; "
        "look at that line's indentation (spaces, the same for keys of one section) and "
        "for a ':' or quote out of place"
    )


def explain(model: type[BaseModel], error: ErrorDetails) -> str | None:
    """The fix for ``error`` in ``model``'s file, or None to keep pydantic's words."""
    loc = error["loc"]
    if not loc or not isinstance(loc[-1], str):
        return None
    if error["type"] == _UNKNOWN_KEY:
        return _unknown_key(_model_at(model, loc[:-1]), loc[-1])
    if error["type"] in _NUMBER_ERRORS:
        return _not_a_number(model, loc, error.get("input"))
    return None


def _unknown_key(owner: type[BaseModel] | None, key: str) -> str:
    if owner is None:
        return "not a setting here"
    known = list(owner.model_fields)
    close = difflib.get_close_matches(key, known, n=2, cutoff=0.6)
    if close:
        return f"not a setting here; did you mean {' or '.join(close)}?"
    return f"not a setting here; this section's keys are {', '.join(known)}"


def _not_a_number(model: type[BaseModel], loc: Sequence[Any], value: Any) -> str | None:
    owner = _model_at(model, loc[:-1])
    key = str(loc[-1])
    unit = next(((name, size) for end, name, size in _UNITS if key.endswith(end)), None)
    if unit is None or owner is None or key not in owner.model_fields:
        return None
    name, size = unit
    written = _DURATION.match(value) if isinstance(value, str) else None
    if written:
        seconds = float(written.group(1)) * _SECONDS_IN[written.group(2).lower()]
        return f"a number of {name}, e.g. {_plain(seconds / size)} for {value.strip()}"
    default = owner.model_fields[key].default
    example = f", e.g. {default}" if isinstance(default, int | float) else ""
    return f"a number of {name}{example}"


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else f"{number:g}"


def _model_at(model: type[BaseModel], path: Sequence[Any]) -> type[BaseModel] | None:
    """The model that holds the keys at ``path`` (``("code",)``: ``CodeConfig``)."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return None
        if isinstance(part, int):
            continue  # an item of a list: the list's model is already current
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model an annotation names, through ``X | None`` and ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None
