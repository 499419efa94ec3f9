"""The JSON Schema that ``fmtrain schema`` prints, kept in the user's cache between runs.

Building it imports pydantic and every component and walks every model (~0.2 s); reading it back
costs a hash of fmtrain's source files (~5 ms). The key is that hash plus the Python and pydantic
versions, so any change to the code that defines the schema builds it afresh.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

import fmtrain
from fmtrain.cache import cache_dir


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)  # readers see the whole file or none
    except OSError:
        pass
    return text


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
