"""Where fmtrain keeps what it can reuse across runs (compile plans, the JSON Schema).

Standard library only: the schema cache reads it on `fmtrain schema`'s fast path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CACHE_DIR_ENV = "FMTRAIN_CACHE_DIR"
# What `fmtrain cache clear` removes: one folder per kind of cached thing.
KINDS = ("plans", "schema")  # folder names; `fmtrain cache clear` counts files per folder


def cache_dir() -> Path:
    """``$FMTRAIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/fmtrain``, else ``~/.cache/fmtrain``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fmtrain"


def clear() -> dict[str, int]:
    """Delete every cached file; returns how many there were of each kind."""
    removed = {}
    for kind in KINDS:
        folder = cache_dir() / kind
        removed[kind] = sum(1 for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
    return removed
