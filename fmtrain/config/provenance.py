"""Where each value of a resolved config came from: a default, a line of the file or of a file it
``extends``, or a ``--set``. Read from the marks the loader already keeps (``yaml_marks.Marks``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fmtrain.config.loader import load_data, validate_config
from fmtrain.config.yaml_marks import KeyPath, Mark, Marks, one_line

SourceKind = Literal["default", "file", "extends", "set", "file name"]
_MISSING = object()


@dataclass(frozen=True)
class Source:
    """Where one value came from."""

    kind: SourceKind
    mark: Mark | None = None
    """The position in a file, or the ``--set`` (None for a default)."""

    def __str__(self) -> str:
        if self.kind == "default":
            return "default"
        if self.kind == "extends":
            return f"{self.mark} (extends)"
        return str(self.mark)


@dataclass(frozen=True)
class Explained:
    """One leaf of the resolved config: its dotted key, its value and where it came from."""

    key: str
    value: Any
    source: Source


def explain_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Any, list[Explained]]:
    """Load ``path`` as :func:`fmtrain.config.load_config` does and say where each resolved value came from.

    Returns:
        The validated ``Config`` and one :class:`Explained` per leaf of ``Config.to_yaml_dict()``, in order.

    Raises:
        ConfigError: as ``load_config``.
    """
    data, marks = load_data(path, overrides)
    cfg = validate_config(data, marks)
    top = one_line(str(Path(path)))
    explained = [Explained(".".join(map(str, key)), value, _source(key, value, data, marks, top))
                 for key, value in _leaves(cfg.to_yaml_dict(), ())]
    return cfg, explained


def format_explained(rows: list[Explained]) -> str:
    """``key: value  # source`` lines, the sources aligned."""
    shown = [(f"{row.key}: {_shown(row.value)}", str(row.source)) for row in rows]
    width = min(max((len(text) for text, _ in shown), default=0), 60)
    return "".join(f"{text:<{width}}  # {source}\n" for text, source in shown)


def _leaves(value: Any, path: KeyPath):
    """Each scalar (or list of scalars, or empty collection) under ``value`` with its key path."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path, value


def _source(path: KeyPath, value: Any, data: Any, marks: Marks, top: str) -> Source:
    """The mark of the deepest part of ``path`` the user wrote; a default when the key was not written.

    Validation expands some shorthand (``loss: mse`` becomes ``loss.name``): a key under a value
    the user wrote as a scalar came from that line when it holds that value, else it is a default.
    """
    node, written = data, 0
    for segment in path:
        child = _child(node, segment)
        if child is _MISSING:
            break
        node, written = child, written + 1
    if written < len(path) and (isinstance(node, (dict, list)) or node != value):
        return Source("default")
    mark = marks.get(path[:written]) or marks.nearest(path[:written])
    if written == len(path) and isinstance(value, list):  # --set model.hidden_units.0=64 changed one item
        mark = next((marks[(*path, i)] for i in range(len(value))
                     if (*path, i) in marks and marks[(*path, i)].origin.startswith("--set ")), mark)
    if mark is None:
        return Source("default")
    if mark.origin.startswith("--set "):
        return Source("set", mark)
    if mark.line is None:
        return Source("file name", mark)
    return Source("file" if mark.origin == top else "extends", mark)


def _child(node: Any, segment: Any) -> Any:
    if isinstance(node, dict):
        return node.get(segment, _MISSING)
    if isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
        return node[segment]
    return _MISSING


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value) if not value or value != value.strip() or ": " in value else value
    return json.dumps(value)
