"""Preprocessing steps, fitted on the training split only and saved inside the model.

Feature steps become Keras layers placed in front of the model, so ``model.keras`` carries
their learned state (standardize's mean and variance) and eval/predict apply exactly the same
transform to raw inputs. Label steps (``one_hot``) change the targets and are re-applied from
the resolved config at eval time.

Each step is a one-key map in YAML (``- rescale: {scale: 0.0039}``) and registered here with
the pydantic class that validates its options. Keras is imported only inside builders.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import numpy as np
from pydantic import Field, model_validator

from fmtrain.config.base import StrictModel
from fmtrain.errors import ConfigError
from fmtrain.registry import Registry

STEPS: Registry[Callable[..., Any]] = Registry("preprocess step")


class RescaleParams(StrictModel):
    scale: float | None = None
    """Multiply inputs by this (e.g. 1/255); mutually exclusive with range."""
    offset: float = 0.0
    """Added after scaling."""
    range: tuple[float, float] | None = None
    """Map the training data's min..max onto this interval, e.g. [0, 1] or [-1, 1]."""

    @model_validator(mode="after")
    def _one_way(self) -> "RescaleParams":
        if self.scale is not None and self.range is not None:
            raise ValueError("give either scale (with offset) or range, not both")
        if self.range is not None and self.range[0] >= self.range[1]:
            raise ValueError(f"range must be [low, high] with low < high, found {list(self.range)}")
        return self


class StandardizeParams(StrictModel):
    per: Literal["feature", "global"] = "feature"
    """'feature': one mean/std per input element; 'global': one mean/std over all elements."""


class OneHotParams(StrictModel):
    num_classes: int | None = Field(None, ge=2)
    """Width of the one-hot labels (default: the data's number of classes)."""


class ReshapeParams(StrictModel):
    shape: list[int] = Field(min_length=1)
    """Per-example target shape, e.g. [28, 28, 1]; -1 infers one dimension."""


class FlattenParams(StrictModel):
    pass


@STEPS.register("rescale", params=RescaleParams)
def _rescale(params: RescaleParams, x_train: np.ndarray, info) -> list[Any]:
    """Scale inputs by a constant, or map the training min..max onto a range."""
    import keras

    scale, offset = params.scale, params.offset
    if params.range is not None:
        low, high = float(np.min(x_train)), float(np.max(x_train))
        span = (high - low) or 1.0
        scale = (params.range[1] - params.range[0]) / span
        offset = params.range[0] - low * scale
    elif scale is None:
        scale = 1.0
    return [keras.layers.Rescaling(scale=scale, offset=offset, name=None)]


@STEPS.register("standardize", params=StandardizeParams)
def _standardize(params: StandardizeParams, x_train: np.ndarray, info) -> list[Any]:
    """Subtract the training mean and divide by the training standard deviation."""
    import keras

    x = np.asarray(x_train, dtype=np.float32)
    if params.per == "global":
        axis = None
    else:
        axis = tuple(range(1, x.ndim)) if x.ndim > 1 else None
        axis = axis if axis is None or len(axis) > 1 else axis[0]
    layer = keras.layers.Normalization(axis=axis)
    layer.adapt(x)
    return [layer]


@STEPS.register("reshape", params=ReshapeParams)
def _reshape(params: ReshapeParams, x_train: np.ndarray, info) -> list[Any]:
    """Reshape each example, e.g. 784 → [28, 28, 1]."""
    import keras

    per_example = int(np.prod(x_train.shape[1:]))
    target = list(params.shape)
    known = int(np.prod([d for d in target if d != -1]))
    if target.count(-1) > 1 or (-1 not in target and known != per_example) or (
        -1 in target and per_example % known
    ):
        raise ConfigError(
            f"preprocess reshape: cannot reshape examples of shape {list(x_train.shape[1:])} "
            f"({per_example} values) to {target}"
        )
    return [keras.layers.Reshape(tuple(target))]


@STEPS.register("flatten", params=FlattenParams)
def _flatten(params: FlattenParams, x_train: np.ndarray, info) -> list[Any]:
    """Flatten each example to one vector."""
    import keras

    return [keras.layers.Flatten()]


@STEPS.register("one_hot", params=OneHotParams)
def _one_hot(params: OneHotParams, x_train: np.ndarray, info) -> list[Any]:
    """One-hot encode class labels (for categorical_crossentropy)."""
    return []  # a label step: see one_hot_classes


LABEL_STEPS = frozenset({"one_hot"})


def fit_feature_layers(steps: list, x_train, info) -> list[Any]:
    """Fit every feature step on the training inputs, in order, as Keras layers.

    Args:
        steps: ``Config.preprocess`` (validated step items); label steps are skipped.
        x_train: raw training inputs.
        info: the data's ``DataInfo``.

    Returns:
        Keras layers to place in front of the model.

    Raises:
        ConfigError: a step does not fit the data.
    """
    layers: list[Any] = []
    current = x_train
    for index, item in enumerate(steps):
        if item.step_name in LABEL_STEPS:
            continue
        if isinstance(current, dict):
            raise ConfigError(
                f"preprocess.{index}.{item.step_name}: feature steps apply to a single input array; "
                "this data has several named inputs"
            )
        new_layers = STEPS.get(item.step_name).build(item.params, current, info)
        # Later steps are fitted on what earlier steps produce (rescale, then standardize).
        for layer in new_layers:
            current = np.asarray(layer(np.asarray(current, dtype=np.float32)))
        layers.extend(new_layers)
    return layers


def one_hot_classes(steps: list, info) -> int | None:
    """Width of one-hot labels if a ``one_hot`` step is configured, else None.

    Raises:
        ConfigError: one_hot on a task without class labels.
    """
    for index, item in enumerate(steps):
        if item.step_name == "one_hot":
            if info.task != "classification":
                raise ConfigError(f"preprocess.{index}.one_hot: labels are not class ids (task is {info.task})")
            return item.params.num_classes or info.num_classes
    return None
