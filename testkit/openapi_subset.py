"""A few operations of an OpenAPI document, with every component they reference, unchanged.

SignalWire's REST document (about 2 MB, 151 paths) is too big for some tools: Stoplight
Prism 5 had not started on it after ten minutes of one CPU and 2 GB of memory, while the
handful of paths the agent calls, with their components, start in about two seconds. A
subset copies what it keeps as it is: the operations of each kept path (all of its methods),
the components they reach through ``$ref`` (transitively) and the security schemes, so a
request is judged by exactly the schemas the whole document would judge it by.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

_COMPONENTS = "#/components/"


def load_document(path: Path) -> dict[str, Any]:
    """The YAML (or JSON) document; libyaml's loader when present (the REST one: ~1 s, not 4)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as stream:
        document = yaml.load(stream, Loader=loader)
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not an OpenAPI document")
    return document


def referenced_components(document: dict[str, Any], node: Any) -> set[tuple[str, str]]:
    """Every ``(kind, name)`` of ``components`` that ``node`` reaches through ``$ref``."""
    components = document.get("components", {})
    found: set[tuple[str, str]] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_COMPONENTS):
                kind, _, name = ref[len(_COMPONENTS) :].partition("/")
                name = name.replace("~1", "/").replace("~0", "~")  # JSON pointer escapes
                if (kind, name) not in found:
                    found.add((kind, name))
                    stack.append(components[kind][name])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def subset(document: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """``document`` with only ``paths`` (each path item whole) and what they reference.

    Everything else at the top level (``openapi``, ``info``, ``servers``, ``security``) is
    kept as it is; ``tags`` and ``webhooks`` (which the kept paths cannot reference) go.
    A path the document does not have raises ``KeyError``: a renamed path must be noticed.
    """
    kept = {path: document["paths"][path] for path in paths}
    components: dict[str, dict[str, Any]] = {}
    schemes = document.get("components", {}).get("securitySchemes")
    if schemes is not None:
        components["securitySchemes"] = schemes
    for kind, name in sorted(referenced_components(document, kept)):
        components.setdefault(kind, {})[name] = document["components"][kind][name]
    top = {
        k: v for k, v in document.items() if k not in ("paths", "components", "tags", "webhooks")
    }
    return {**top, "paths": kept, "components": components}
