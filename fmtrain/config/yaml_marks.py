"""Safe YAML reading that remembers where every key came from.

PyYAML's safe loader builds plain data; this module walks the composed node tree instead so
each key path (``("train", "epochs")``) maps to its file, line and column, and so duplicate
keys are errors rather than silently last-one-wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fmtrain.errors import ConfigError

KeyPath = tuple[Any, ...]
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass(frozen=True)
class Mark:
    """Where a value came from: a file position, or a command-line override."""

    origin: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.origin
        return f"{self.origin}:{self.line}:{self.column}"


class Marks(dict):
    """``KeyPath → Mark``; :meth:`nearest` falls back to the closest enclosing key."""

    def nearest(self, path: KeyPath) -> Mark | None:
        for end in range(len(path), -1, -1):
            mark = self.get(tuple(path[:end]))
            if mark is not None:
                return mark
        return None


def read_yaml(path: Path) -> tuple[Any, Marks]:
    """Parse one YAML file safely; return its data and the mark of every key path.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML, or repeats a key.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, origin: str) -> tuple[Any, Marks]:
    """Parse YAML ``text``; marks name ``origin``. See :func:`read_yaml`."""
    try:
        loader = yaml.SafeLoader(text)  # checks the characters right away
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: invalid YAML: {exc}".replace("\n", " ")) from None
    try:
        node = loader.get_single_node()
        marks = Marks()
        data = _build(loader, node, (), marks, origin) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_describe_yaml_error(exc, origin)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, marks


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, marks: Marks, origin: str) -> Any:
    marks.setdefault(path, _mark(node.start_mark, origin))
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise ConfigError(f"{_mark(node.start_mark, origin)}: YAML tags such as {node.tag} are not allowed; write plain values")
    if isinstance(node, yaml.MappingNode):
        written = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # resolves '<<' merge keys; merged pairs come first
        merged_count = len(node.value) - written
        result: dict[Any, Any] = {}
        written_here: dict[Any, Mark] = {}  # a written key may override a merged one, not another written one
        for position, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            mark = _mark(key_node.start_mark, origin)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ConfigError(f"{mark}: mapping keys must be plain scalars")
            if position >= merged_count:
                if key in written_here:
                    raise ConfigError(f"{mark}: duplicate key '{key}' (first at line {written_here[key].line})")
                written_here[key] = mark
            marks[path + (key,)] = mark
            result[key] = _build(loader, value_node, path + (key,), marks, origin)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), marks, origin) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _mark(mark: yaml.Mark, origin: str) -> Mark:
    return Mark(origin, mark.line + 1, mark.column + 1)


def _describe_yaml_error(exc: yaml.MarkedYAMLError, origin: str) -> str:
    where = exc.problem_mark or exc.context_mark
    prefix = str(_mark(where, origin)) if where else origin
    problem = exc.problem or exc.context or "invalid YAML"
    if "'\\t'" in problem or "\\t" in problem:
        return f"{prefix}: tab character in YAML; indent with spaces instead"
    if "could not determine a constructor" in problem:
        return f"{prefix}: YAML tags such as {problem.split('tag ')[-1]} are not allowed; write plain values"
    return f"{prefix}: invalid YAML: {problem}"
