"""From a YAML file (plus ``extends:`` bases and ``--set`` overrides) to a validated Config."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fmtrain.config.messages import format_validation_error
from fmtrain.config.yaml_marks import KeyPath, Mark, Marks, one_line, parse_value, parse_yaml, read_yaml
from fmtrain.errors import ConfigError

# Keys whose values are file paths: relative paths resolve against the file that wrote them.
PATH_KEYS: tuple[KeyPath, ...] = (("data", "path"), ("model", "weights"), ("model", "init_from"),
                                  ("data", "files", "train"), ("data", "files", "val"), ("data", "files", "test"))
_INDEX = re.compile(r"-?[0-9]+")  # a list index in a --set key (str.isdigit also takes '²')


def load_config(path: str | Path, overrides: Iterable[str] = ()):
    """Read, merge, override and validate a config file.

    Args:
        path: the YAML file.
        overrides: ``KEY=VALUE`` strings from ``--set``; values are parsed as YAML, by the same
            rules and limits as files (YAML 1.2 floats such as ``3e-4``; bounded alias expansion).

    Returns:
        The validated, immutable :class:`fmtrain.config.schema.Config`.

    Raises:
        ConfigError: naming the file, line and column (or the override) and the key path.
    """
    return validate_config(*load_data(path, overrides))


def load_data(path: str | Path, overrides: Iterable[str] = ()) -> tuple[dict[str, Any], Marks]:
    """What :func:`load_config` validates: the merged ``extends:`` chain with ``overrides`` applied and
    paths resolved, as plain data, and the mark of every key written (file:line:col or ``--set …``).

    Raises:
        ConfigError: as :func:`load_config`, for problems found before validation.
    """
    path = Path(path)
    data, marks = load_raw(path)
    for override in overrides:
        apply_override(data, marks, override)
    data.setdefault("name", path.stem)
    marks.setdefault(("name",), Mark(f"{path} (from the file name)"))
    _resolve_paths(data, marks)
    return data, marks


def validate_config(data: dict[str, Any], marks: Marks | None = None):
    """Validate plain config data; pydantic's errors become one line each with their marks."""
    from fmtrain.config.schema import Config

    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, data, marks or Marks())) from None
    cfg._marks = marks
    return cfg


_KEY_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)*$")


def locate(cfg, message: str) -> str:
    """``message`` prefixed with where its leading key path (``metrics.0: …``) was written in the
    config, for errors found after validation, while the run is built; unchanged otherwise."""
    key, sep, _ = message.partition(": ")
    marks = getattr(cfg, "_marks", None)
    if not sep or not marks or not _KEY_PATH.match(key):
        return message
    path = tuple(int(part) if part.isdigit() else part for part in key.split("."))
    mark = marks.nearest(path)
    return f"{mark}: {message}" if mark is not None and path[:1] in marks else message


def load_raw(path: Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Marks]:
    """Read ``path`` and everything it ``extends``; later files win key by key."""
    path = Path(path)
    data, marks = read_yaml(path)  # first: it refuses a name no file can have
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " → ".join(one_line(str(p)) for p in (*_chain, resolved))
        raise ConfigError(f"{one_line(str(path))}: extends forms a cycle: {cycle}")
    if data is None:
        raise ConfigError(f"{one_line(str(path))}: the file is empty; expected a mapping with data, model, …")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{marks.nearest(())}: the top level must be a mapping of sections, found {type(data).__name__}"
        )
    bases = data.pop("extends", None)
    if bases is None:
        return data, marks
    if isinstance(bases, str):
        bases = {("extends",): bases}
    elif isinstance(bases, list) and all(isinstance(b, str) for b in bases):
        bases = {("extends", i): base for i, base in enumerate(bases)}
    else:
        raise ConfigError(f"{marks[('extends',)]}: extends must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    merged_marks = Marks()
    for key_path, base in bases.items():
        base_path = _base_path(base, path, marks.nearest(key_path))
        base_data, base_marks = load_raw(base_path, (*_chain, resolved))
        merged = deep_merge(merged, base_data)
        merged_marks.update(base_marks)
    merged_marks.update({k: v for k, v in marks.items() if k != ("extends",)})
    return deep_merge(merged, data), merged_marks


def _base_path(base: str, path: Path, where: Mark | None) -> Path:
    """The file an ``extends:`` entry names, relative to the file that names it."""
    if "\0" in base:
        raise ConfigError(f"{where}: extends: a file name cannot contain a null byte, found '{one_line(base)}'")
    base_path = Path(base) if Path(base).is_absolute() else path.parent / base
    try:
        found = base_path.exists()
    except OSError as exc:  # a name too long for the file system, say
        raise ConfigError(f"{where}: extends: cannot use '{one_line(base)}': {exc.strerror or exc}") from None
    if not found:
        raise ConfigError(f"{where}: extends: base config not found: {one_line(str(base_path))}")
    if base_path.is_dir():
        raise ConfigError(f"{where}: extends: {one_line(str(base_path))} is a directory, expected a YAML config file")
    return base_path


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``top`` replaces ``base``."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(data: dict[str, Any], marks: Marks, override: str) -> None:
    """Apply one ``a.b.c=value`` override in place (list items by index: ``preprocess.0.rescale``)."""
    origin = f"--set {one_line(override)}"
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{origin}: expected KEY=VALUE, e.g. --set train.epochs=3")
    value = parse_value(text, origin) if text.strip() else None
    segments: list[Any] = key.strip().split(".")
    node: Any = data
    path: KeyPath = ()
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if isinstance(node, list):
            if not _INDEX.fullmatch(segment) or not -len(node) <= int(segment) < len(node):
                raise ConfigError(
                    f"{origin}: '{_dotted(path)}' is a list of {len(node)} items; "
                    f"'{one_line(segment)}' is not an index into it"
                )
            segment = int(segment) % len(node)
        elif not isinstance(node, dict):
            raise ConfigError(f"{origin}: '{_dotted(path)}' is a value, not a section")
        path += (segment,)
        if last:
            node[segment] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(segment), (dict, list)):
                if _INDEX.fullmatch(segments[position + 1]):
                    raise ConfigError(
                        f"{origin}: '{_dotted(path)}' is not in the config, so it has no item "
                        f"{segments[position + 1]}; set the whole list instead, e.g. --set '{_dotted(path)}=[...]'"
                    )
                node[segment] = {}
                marks[path] = Mark(origin)
            node = node[segment]
    for existing in [p for p in marks if p[: len(path)] == path]:
        del marks[existing]
    _mark_all(value, path, Mark(origin), marks)


def _dotted(path: KeyPath) -> str:
    return one_line(".".join(map(str, path)))


def _mark_all(value: Any, path: KeyPath, mark: Mark, marks: Marks) -> None:
    marks[path] = mark
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        _mark_all(child, path + (key,), mark, marks)


def _resolve_paths(data: dict[str, Any], marks: Marks) -> None:
    """Make the path keys absolute: relative to the file that wrote them (the working directory for
    ``--set``); a URL such as ``gs://bucket/shards-*`` stays as written. A key may hold a list of paths."""
    for key_path in PATH_KEYS:
        parent = data
        for segment in key_path[:-1]:
            parent = parent.get(segment) if isinstance(parent, dict) else None
        value = parent.get(key_path[-1]) if isinstance(parent, dict) else None
        if isinstance(value, str):
            parent[key_path[-1]] = _resolve_path(value, key_path, marks)
        elif isinstance(value, list):
            parent[key_path[-1]] = [_resolve_path(item, key_path + (i,), marks) if isinstance(item, str) else item
                                    for i, item in enumerate(value)]


def _resolve_path(value: str, key_path: KeyPath, marks: Marks) -> str:
    key = ".".join(str(segment) for segment in key_path)
    if "\0" in value:
        raise ConfigError(f"{marks.nearest(key_path)}: {key}: a path cannot contain a null byte, "
                          f"found '{one_line(value)}'")
    if "://" in value:
        return value
    try:
        value = str(Path(value).expanduser())
    except RuntimeError:  # ~name of no user here
        raise ConfigError(f"{marks.nearest(key_path)}: {key}: no home directory for "
                          f"'{one_line(value.split('/')[0])}' on this machine") from None
    if Path(value).is_absolute():
        return value
    mark = marks.get(key_path)
    from_file = mark is not None and mark.line is not None
    base = Path(mark.origin).parent if from_file else Path.cwd()
    return str((base / value).resolve())


def parse_config_text(text: str, origin: str = "<string>"):
    """Validate a config given as YAML text (used by tests and tools)."""
    data, marks = parse_yaml(text, origin)
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections")
    return validate_config(data, marks)
