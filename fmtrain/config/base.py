"""The pydantic base class every config section shares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from fmtrain.registry import describe_choices, did_you_mean


class StrictModel(BaseModel):
    """Unknown keys are errors; validated configs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


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
