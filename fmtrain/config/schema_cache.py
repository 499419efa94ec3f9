"""What ``fmtrain schema`` and ``fmtrain list`` print, kept in the user's cache between runs.

Building the JSON Schema imports pydantic and every component and walks every model (~0.2 s); the
component lists need every component imported (~0.15 s). Reading either back costs a hash of
fmtrain's source files (~5 ms). The key is that hash plus the Python and pydantic versions, so any
change to the code that defines them builds them afresh.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import fmtrain
from fmtrain.cache import cache_dir

LISTS = ("models", "sources", "preprocess", "metrics")
"""What ``fmtrain list`` lists."""


class Listed(NamedTuple):
    """One registered component, as ``fmtrain list`` shows it."""

    name: str
    summary: str


def json_schema_text() -> str:
    """The config's JSON Schema as indented JSON: from the cache when the code is unchanged, else built
    (and cached; a cache that cannot be written only costs the time)."""
    path = cache_dir() / "schema" / f"{_source_key()}.json"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    from fmtrain.config.schema import Config

    text = json.dumps(Config.model_json_schema(mode="validation"), indent=2)
    _write(path, text)
    return text


def component_lists() -> dict[str, list[Listed]]:
    """Each of :data:`LISTS` → its registered components, in name order: from the cache when the code
    is unchanged, else from the registries (and cached)."""
    path = cache_dir() / "schema" / f"{_source_key()}.lists.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return {kind: [Listed(*entry) for entry in stored[kind]] for kind in LISTS}
    except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable or not what this code writes
        pass
    from fmtrain import components

    registries = components.listed()
    lists = {kind: [Listed(entry.name, entry.summary) for entry in registries[kind].entries()] for kind in LISTS}
    _write(path, json.dumps(lists))
    return lists


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all; a cache that cannot be written only costs the time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)  # readers see the whole file or none
    except OSError:
        pass


@functools.cache
def _source_key() -> str:
    digest = hashlib.sha256(f"{sys.version}\0{fmtrain.__version__}\0".encode())
    root = Path(fmtrain.__file__).parent
    for source in sorted(root.rglob("*.py")):
        digest.update(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes())
    # pydantic's version, read without importing pydantic (~40 ms, which is what the cache saves).
    spec = importlib.util.find_spec("pydantic")
    if spec is not None and spec.origin is not None:
        digest.update((Path(spec.origin).parent / "version.py").read_bytes())
    return digest.hexdigest()[:32]
