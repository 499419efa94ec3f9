"""Turn pydantic's validation errors into one line per problem, with file, line and key path."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from fmtrain.config.yaml_marks import Marks, one_line
from fmtrain.registry import describe_choices, did_you_mean

MAX_PROBLEMS = 10


def format_validation_error(exc: ValidationError, data: Any, marks: Marks) -> str:
    """One line per problem: ``file:line:col: key.path: what is wrong (found X; did you mean Y?)``."""
    from fmtrain.config.schema import Config

    grouped: dict[tuple, list[str]] = {}
    for error in exc.errors():
        raw_loc = tuple(error["loc"])
        path = _data_path(raw_loc, data, keep_last=error["type"] in ("missing",))
        if error["type"] == "union_tag_invalid":
            path += ("type",)  # the only tagged union keyed by a field the user writes
        grouped.setdefault(path, [])
        message = _describe(error, raw_loc, Config)
        if message not in grouped[path]:
            grouped[path].append(message)
    lines = []
    for path, messages in list(grouped.items())[:MAX_PROBLEMS]:
        mark = marks.nearest(path)
        where = f"{mark}: " if mark else ""
        key = ".".join(str(p) for p in path) or "(top level)"
        lines.append(one_line(f"{where}{key}: {'; or '.join(messages)}"))
    if len(grouped) > MAX_PROBLEMS:
        lines.append(f"… and {len(grouped) - MAX_PROBLEMS} more problems")
    return "\n".join(lines)


def _data_path(loc: tuple, data: Any, keep_last: bool) -> tuple:
    """Keep the parts of pydantic's location that index into the data (drop union tags and type names)."""
    path: list[Any] = []
    node = data
    for position, segment in enumerate(loc):
        if isinstance(node, dict) and segment in node:
            node = node[segment]
            path.append(segment)
        elif isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
            node = node[segment]
            path.append(segment)
        elif keep_last and position == len(loc) - 1:
            path.append(segment)
    return tuple(path)


def _describe(error: dict, loc: tuple, root: type[BaseModel]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        fields = _fields_at(root, loc[:-1]) or []
        return f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), fields)}" + (
            f"; expected one of {describe_choices(fields)}" if fields else ""
        )
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']+)'", str(ctx.get("expected_tags", "")))
        name = ctx.get("tag")
        return f"unknown {_tag_kind(loc)} '{name}'{did_you_mean(str(name), tags)}; choose from {describe_choices(tags)}"
    if kind == "union_tag_not_found":  # only model sections are keyed by a field
        from fmtrain.models import MODELS

        return f"needs a 'type' key: one of {describe_choices(MODELS.names())}"
    if kind == "preprocess_step" and isinstance(error.get("input"), dict) and len(error["input"]) == 1:
        from fmtrain.preprocess import STEPS

        name = str(next(iter(error["input"])))
        choices = STEPS.names()
        return f"unknown preprocess step '{name}'{did_you_mean(name, choices)}; choose from {describe_choices(choices)}"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "literal_error":
        choices = re.findall(r"'([^']+)'", str(ctx.get("expected", "")))
        message += did_you_mean(str(error.get("input")), choices)
    if kind not in ("unknown_name", "value_error", "preprocess_step", "learning_rate") and "input" in error:
        message += f", found {_short(error['input'])}"
    if kind == "string_type" and isinstance(error.get("input"), (int, float)):
        # YAML reads 1e3, 007 or true as numbers or booleans; quotes keep the text.
        message += " (YAML reads this as a number or boolean; put it in quotes to keep it as text)"
    return message


def _tag_kind(loc: tuple) -> str:
    return "model type" if loc and loc[0] == "model" else "kind"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields_at(root: type[BaseModel], loc: tuple) -> list[str] | None:
    """The field names of the config class reached by following ``loc`` (tags pick union members)."""
    current: Any = root
    for segment in loc:
        current = _descend(current, segment)
        if current is None:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _descend(tp: Any, segment: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            meta = typing.get_args(member)[1:] if typing.get_origin(member) is typing.Annotated else ()
            if any(getattr(m, "tag", None) == segment for m in meta):
                return member
        return None
    if origin is list and isinstance(segment, int):
        return typing.get_args(tp)[0]
    if origin is dict:
        return typing.get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel) and segment in tp.model_fields:
        return tp.model_fields[segment].annotation
    return None
