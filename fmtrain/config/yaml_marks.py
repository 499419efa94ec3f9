"""Safe YAML reading that remembers where every key came from.

PyYAML's safe loader builds plain data; this module walks the composed node tree instead so
each key path (``("train", "epochs")``) maps to its file, line and column, and so duplicate
keys are errors rather than silently last-one-wins.

Departures from PyYAML's YAML 1.1 rules, all deliberate:

- Floats follow YAML 1.2 as well: ``3e-4``, ``1E-3`` and ``1.5e3`` are numbers, not strings
  (YAML 1.1 wants a dot and a signed exponent). This is how people write learning rates.
- Aliases may bring in at most :data:`MAX_ALIAS_VALUES` values in all, counted while walking
  the node tree, so a small file of nested aliases (a "billion laughs" alias bomb, as in
  Kubernetes' CVE-2019-11253) is refused before it is built; nesting stops at :data:`MAX_DEPTH`.
- Explicit tags are refused (``!!python/…``, ``!!set``, ``!!float``, …), except ``!!str``, the
  harmless way to keep ``1e3`` text. Every error is one line that names file, line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fmtrain.errors import ConfigError

KeyPath = tuple[Any, ...]

MAX_ALIAS_VALUES = 10_000
"""Values that ``*alias`` uses may bring in, all uses together; values written out do not count."""
MAX_DEPTH = 100
"""Nesting depth of mappings and lists; configs are a few levels deep."""

_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"  # YAML 1.1's '=' key; a plain string here
_YAML12_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+[eE][-+]?[0-9]+)$""",
    re.X,
)


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


def one_line(text: str) -> str:
    """``text`` with newlines, null bytes and other unprintable characters written as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def read_yaml(path: Path) -> tuple[Any, Marks]:
    """Parse one YAML file safely; return its data and the mark of every key path.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML, repeats a key, uses
            a tag, or its aliases expand past :data:`MAX_ALIAS_VALUES`.
    """
    shown = one_line(str(path))
    if "\0" in str(path):
        raise ConfigError(f"{shown}: a file name cannot contain a null byte")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{shown}: is a directory, expected a YAML config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read config file: {one_line(str(exc))}") from None
    return parse_yaml(text, shown)


def parse_yaml(text: str, origin: str) -> tuple[Any, Marks]:
    """Parse YAML ``text``; marks name ``origin``. See :func:`read_yaml`."""
    return _parse(text, origin, positions=True)


def parse_value(text: str, origin: str) -> Any:
    """Parse one command-line value (``--set key=VALUE``) by the same rules and limits as a file.

    Errors name ``origin`` alone (no line and column: the value is one line the user just typed).

    Raises:
        ConfigError: as :func:`read_yaml`.
    """
    return _parse(text, origin, positions=False)[0]


def dump_yaml(data: Any) -> str:
    """YAML text that this module reads back as ``data``: keys in order, text that reads as a float quoted.

    ``yaml.safe_dump`` quotes only what YAML 1.1 reads as a number, so it writes the string "1e3"
    bare, which :func:`parse_yaml` then reads as 1000.0.
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _parse(text: str, origin: str, positions: bool) -> tuple[Any, Marks]:
    invalid = "invalid YAML" if positions else "the value is not valid YAML"
    try:
        loader = _Loader(text)  # checks the characters right away
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: {invalid}: {one_line(str(exc))}") from None
    try:
        node = loader.get_single_node()
        marks = Marks()
        data = _Builder(loader, origin, positions, marks).build(node, (), None) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_describe_yaml_error(exc, origin, positions, invalid)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: {invalid}: {one_line(str(exc))}") from None
    finally:
        loader.dispose()
    return data, marks


@dataclass(frozen=True)
class _Alias:
    """One ``*name`` use: the anchored node it stands for, and where the alias was written."""

    anchor: str
    node: yaml.Node
    start_mark: yaml.Mark


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats; each alias use stays visible as an :class:`_Alias`.

    PyYAML's composer hands back the anchored node itself for every alias, so the tree no longer
    says which branches are copies; :class:`_Builder` needs that to count what aliases bring in.
    """

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return _Alias(event.anchor, super().compose_node(parent, index), event.start_mark)
        if self.depth >= MAX_DEPTH:  # before PyYAML's recursion runs out of stack
            raise _TooDeep(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _TooDeep(yaml.MarkedYAMLError):
    pass


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes what :class:`_Loader` would read as a float."""


# Appended after YAML 1.1's resolvers, so ints (and 1.1 floats) still resolve as before.
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


class _Builder:
    """Builds plain data from the node tree, recording marks and counting alias expansion."""

    def __init__(self, loader: _Loader, origin: str, positions: bool, marks: Marks) -> None:
        self.loader, self.origin, self.positions, self.marks = loader, origin, positions, marks
        self.expanded = 0  # values built beneath an alias use
        self.open: set[int] = set()  # anchored nodes being built, to catch an alias inside its own anchor

    def mark(self, where: yaml.Mark) -> Mark:
        return Mark(self.origin, where.line + 1, where.column + 1) if self.positions else Mark(self.origin)

    def build(self, node: yaml.Node | _Alias, path: KeyPath, via: _Alias | None) -> Any:
        """``via``: the outermost alias use above ``node``, named when the limit is reached."""
        if isinstance(node, _Alias):
            self.marks.setdefault(path, self.mark(node.start_mark))
            if id(node.node) in self.open:
                raise ConfigError(f"{self.mark(node.start_mark)}: alias *{node.anchor} is used inside its own anchor")
            via = via or node
            self.open.add(id(node.node))
            try:
                return self.build(node.node, path, via)
            finally:
                self.open.discard(id(node.node))
        where = self.mark(node.start_mark)
        if via is not None:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_VALUES:
                raise ConfigError(
                    f"{self.mark(via.start_mark)}: alias *{via.anchor} takes the values copied by aliases past "
                    f"{MAX_ALIAS_VALUES:,}, the limit that stops alias bombs; write the values out or use fewer aliases"
                )
        if len(path) > MAX_DEPTH and via is not None:  # the composer checked the depth of what is written
            raise ConfigError(
                f"{self.mark(via.start_mark)}: alias *{via.anchor} nests the config deeper than {MAX_DEPTH} levels"
            )
        self.marks.setdefault(path, where)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            raise ConfigError(f"{where}: YAML tags such as {_shown_tag(node.tag)} are not allowed; write plain values")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, via)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), via) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, via: _Alias | None) -> dict[Any, Any]:
        # '<<' merge keys first (earlier sources win, as in PyYAML), then written keys, which may
        # override merged ones but not each other. PyYAML's flatten_mapping is not used: it copies
        # merged pairs without counting them and rewrites nodes that aliases share.
        result: dict[Any, Any] = {}
        merged_marks = Marks()
        for key_node, value_node in node.value:
            if _target(key_node).tag == _MERGE_TAG:
                for source in self._merge_sources(value_node):
                    built, source_marks = self._build_apart(source, path, via)
                    new_keys = {key for key in built if key not in result}
                    result.update({key: built[key] for key in new_keys})
                    merged_marks.update(
                        (p, m) for p, m in source_marks.items() if len(p) > len(path) and p[len(path)] in new_keys
                    )
        written_here: dict[Any, Mark] = {}
        for key_node, value_node in node.value:
            if _target(key_node).tag == _MERGE_TAG:
                continue
            mark = self.mark(key_node.start_mark)
            key = self._key(key_node, mark)
            if key in written_here:
                first = written_here[key].line
                raise ConfigError(
                    f"{mark}: duplicate key '{_shown(key)}' ({f'first at line {first}' if first else 'given twice'})"
                )
            written_here[key] = mark
            self.marks[path + (key,)] = mark
            result[key] = self.build(value_node, path + (key,), via)
        # A written key replaces a merged value whole, with the marks of its parts.
        self.marks.update((p, m) for p, m in merged_marks.items() if p[len(path)] not in written_here)
        return result

    def _build_apart(self, node: yaml.Node | _Alias, path: KeyPath, via: _Alias | None) -> tuple[Any, Marks]:
        """Build ``node`` at ``path``, returning its marks instead of recording them."""
        recorded, self.marks = self.marks, Marks()
        try:
            return self.build(node, path, via), self.marks
        finally:
            self.marks = recorded

    def _merge_sources(self, value_node: yaml.Node | _Alias) -> list[yaml.Node | _Alias]:
        target = _target(value_node)
        sources = target.value if isinstance(target, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(_target(source), yaml.MappingNode):
                where = value_node if isinstance(value_node, _Alias) else source
                raise ConfigError(
                    f"{self.mark(where.start_mark)}: '<<' merges a mapping or a list of mappings, e.g. '<<: *base'"
                )
        return sources

    def _key(self, key_node: yaml.Node | _Alias, mark: Mark) -> Any:
        target = _target(key_node)
        key = self._scalar(target) if isinstance(target, yaml.ScalarNode) else None
        if not isinstance(target, yaml.ScalarNode) or not isinstance(key, (str, int, float, bool, type(None))):
            raise ConfigError(f"{mark}: mapping keys must be plain scalars")
        return key

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag in (_VALUE_TAG, _MERGE_TAG):  # '=' or '<<' where no merge can happen
            return node.value
        implicit = self.loader.resolve(yaml.ScalarNode, node.value, (True, False)) if node.style is None else _STR_TAG
        if node.tag not in (implicit, _STR_TAG):  # an explicit tag; only !!str is harmless
            raise ConfigError(
                f"{self.mark(node.start_mark)}: YAML tags such as {_shown_tag(node.tag)} are not allowed; "
                "write plain values"
            )
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError as exc:  # 2024-13-01 (no such date), an int of 5000 digits
            raise ConfigError(
                f"{self.mark(node.start_mark)}: cannot read '{_shown(node.value)}': {one_line(str(exc))}"
            ) from None


def _target(node: yaml.Node | _Alias) -> yaml.Node:
    return node.node if isinstance(node, _Alias) else node


def _shown(value: Any, limit: int = 60) -> str:
    text = one_line(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown_tag(tag: str) -> str:
    return _shown("!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag)


def _describe_yaml_error(exc: yaml.MarkedYAMLError, origin: str, positions: bool, invalid: str) -> str:
    where = exc.problem_mark or exc.context_mark
    prefix = f"{origin}:{where.line + 1}:{where.column + 1}" if positions and where else origin
    problem = one_line(exc.problem or exc.context or "invalid YAML")
    if isinstance(exc, _TooDeep):
        return f"{prefix}: {problem}"
    if "'\\t'" in problem or "\\t" in problem:
        return f"{prefix}: tab character in YAML; indent with spaces instead"
    if "could not determine a constructor" in problem:
        return f"{prefix}: YAML tags such as {problem.split('tag ')[-1]} are not allowed; write plain values"
    return f"{prefix}: {invalid}: {problem}"
