"""The pydantic base class every config section shares."""

from __future__ import annotations

import functools
import inspect
import math
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from fmtrain.registry import describe_choices, did_you_mean


class StrictModel(BaseModel):
    """Unknown keys are errors; validated configs are immutable.

    A field's docstring (the string literal below it) is its description, as with pydantic's
    ``use_attribute_docstrings``, but read by :func:`_attribute_docstrings` from the module's text
    once: pydantic's own reader walks the stack and re-parses each class, which was ~40% of
    ``fmtrain validate``. Schemas are built on first use (``defer_build``), so a command builds only
    the validators it needs, after the descriptions are set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        docs = _attribute_docstrings(cls.__module__).get(cls.__qualname__, {})
        for name, field in cls.__pydantic_fields__.items():
            if field.description is None and name in docs and name in cls.__dict__.get("__annotations__", {}):
                field.description = docs[name]


_CLASS = re.compile(r"^(\s*)class (\w+)\b")
_FIELD = re.compile(r"^(\s*)(\w+)\s*:")


@functools.cache
def _attribute_docstrings(module: str) -> dict[str, dict[str, str]]:
    """Class qualname → field → the docstring written under that field, for the classes of ``module``.

    Reads the layout this code base writes (``name: type = default`` at the class body's indent,
    then a triple-quoted string at the same indent); ``tests/test_startup_speed.py`` checks that the
    JSON Schema has every description pydantic's reader found.
    """
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path or not path.endswith(".py"):
        return {}
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    out: dict[str, dict[str, str]] = {}
    stack: list[tuple[int, str]] = []  # (indent of the class line, qualname)
    field: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        while stack and indent <= stack[-1][0]:
            stack.pop()
            field = None
        body = stack[-1][0] if stack else -1
        match = _CLASS.match(line)
        if match:
            qualname = f"{stack[-1][1]}.{match[2]}" if stack else match[2]
            stack.append((indent, qualname))
            field = None
        elif stack and indent > body and stripped.startswith('"""') and field is not None:
            text = [stripped[3:]]
            while '"""' not in text[-1] and i + 1 < len(lines):
                i += 1
                text.append(lines[i])
            doc = "\n".join(text)
            out.setdefault(stack[-1][1], {})[field] = inspect.cleandoc(doc[:doc.index('"""')])
            field = None
        elif stack and (m := _FIELD.match(line)) and not stripped.startswith(("def ", "return ", "@")):
            field = m[2]
            # A field's statement may span lines (Field(...) arguments): skip to its last line.
            depth = sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
            while depth > 0 and i + 1 < len(lines):
                i += 1
                depth += sum(lines[i].count(c) for c in "([{") - sum(lines[i].count(c) for c in ")]}")
        else:
            field = None
        i += 1
    return out


def check_name(kind: str, name: str, choices: Iterable[str]) -> str:
    """Raise a pydantic error naming the closest choice when ``name`` is not one of ``choices``."""
    choices = list(choices)
    if name not in choices:
        raise PydanticCustomError(
            "unknown_name",
            "unknown {kind} '{name}'{hint}; choose from {choices}",
            {"kind": kind, "name": name, "hint": did_you_mean(name, choices),
             "choices": describe_choices(choices)},
        )
    return name


def _known_activation(value: str) -> str:
    from fmtrain.config import keras_names

    return check_name("activation", value, keras_names.ACTIVATIONS)


KerasActivation = Annotated[str, AfterValidator(_known_activation)]
"""A string field that must name a Keras activation (checked without importing Keras)."""


KIND_WORDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "a string",
              "list": "a list", "None": "null", "any": "any value"}
"""How an error names each kind of argument in ``keras_names`` (``float|None`` reads "a number")."""


def fits_kind(value: Any, kind: str) -> bool:
    """Whether ``value``, as YAML read it, is of ``kind`` (e.g. ``float|None``); no coercion: "1e-4" is a string."""
    for part in kind.split("|"):
        if part == "any" or (part == "None" and value is None) or (part == "bool" and isinstance(value, bool)):
            return True
        if isinstance(value, bool):
            continue
        if part == "int" and isinstance(value, int):
            return True
        if part == "float" and isinstance(value, (int, float)) and math.isfinite(value):
            return True
        if (part == "str" and isinstance(value, str)) or (part == "list" and isinstance(value, list)):
            return True
    return False


def describe_kind(kind: str) -> str:
    """``float|None`` → "a number": null only means the default, so the words leave it out when there is more."""
    parts = [p for p in kind.split("|") if p != "None"] or ["None"]
    return " or ".join(KIND_WORDS[p] for p in parts)


def check_arguments(owner: str, args: Mapping[str, Any], kinds: Mapping[str, str], *,
                    required: Iterable[str] = (), also_valid: Iterable[str] = (), at: tuple = ()) -> None:
    """Check the arguments a config passes to a Keras or fmtrain component, without importing it.

    Args:
        owner: the component as the config names it (``adam``, ``huber``), for the messages.
        args: the arguments as written in the YAML.
        kinds: every argument ``owner`` takes → its kind (``keras_names.OPTIMIZER_ARGS[...]`` and friends).
        required: arguments ``owner`` cannot do without.
        also_valid: other keys allowed beside ``args`` (fields of the section), offered as did-you-mean.
        at: where ``args`` sit below the validated object, e.g. ``("huber",)`` for ``loss: {huber: {...}}``.

    Raises:
        pydantic.ValidationError: one error per bad argument, located at the argument's key, so the
            messages layer names its file and line.
    """
    errors = []
    for key, value in args.items():
        if key not in kinds:
            errors.append(_unknown_argument(owner, key, value, kinds, also_valid, at))
        elif not fits_kind(value, kinds[key]):
            # The messages layer adds ", found <value>".
            errors.append({"type": PydanticCustomError("argument_type", "{owner}'s {key} is {expected}",
                                                       {"owner": owner, "key": key,
                                                        "expected": describe_kind(kinds[key])}),
                           "loc": (*at, key), "input": value})
    missing = [f"{key} ({describe_kind(kinds.get(key, 'any'))})" for key in required if key not in args]
    if missing:
        errors.append({"type": PydanticCustomError("value_error", "{owner} needs {missing}",
                                                   {"owner": owner, "missing": " and ".join(missing)}),
                       "loc": at, "input": dict(args)})
    if errors:
        raise ValidationError.from_exception_data(owner, errors)


def check_params(owner: str, args: Mapping[str, Any], params: type[BaseModel], *, at: tuple = ()) -> None:
    """Like :func:`check_arguments`, for a component that declares a params model (fmtrain's own).

    Validated strictly: the builder receives ``args`` as written, so "yes" must not pass for true.

    Raises:
        pydantic.ValidationError: ``params``'s errors, located below ``at``.
    """
    try:
        params.model_validate(dict(args), strict=True)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            if error["type"] == "extra_forbidden":
                key = str(error["loc"][-1])
                errors.append(_unknown_argument(owner, key, error["input"], params.model_fields, (), at))
            else:
                errors.append({"type": error["type"], "loc": (*at, *error["loc"]), "input": error["input"],
                               **({"ctx": error["ctx"]} if "ctx" in error else {})})
        raise ValidationError.from_exception_data(owner, errors) from None


def _unknown_argument(owner: str, key: str, value: Any, kinds: Iterable[str], also_valid: Iterable[str],
                      at: tuple) -> dict[str, Any]:
    kinds = list(kinds)
    hint = did_you_mean(key, [*kinds, *also_valid])
    if not hint:
        hint = f"; it takes {describe_choices(kinds)}" if kinds else "; it takes none"
    return {"type": PydanticCustomError("unknown_name", "{owner} takes no argument '{key}'{hint}",
                                        {"owner": owner, "key": key, "hint": hint}),
            "loc": (*at, key), "input": value}
