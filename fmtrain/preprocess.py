"""Preprocessing steps, fitted on the training split only and saved inside the model.

Feature steps become Keras layers placed in front of the model, so ``model.keras`` carries
their learned state (standardize's mean and variance, text_vectorize's and lookup's
vocabularies) and eval/predict apply exactly the same transform to raw inputs. Label steps
(``one_hot``) change the targets and are re-applied from the resolved config at eval time.
Random augmentation layers act only when the model is called with ``training=True``.

Each step is a one-key map in YAML (``- rescale: {scale: 0.0039}``) and registered here with
the pydantic class that validates its options. On data with several named inputs (a dict ``x``:
``{image, text, numeric}``, ``{user, item}``), every feature step names the input it transforms
with ``input:``; each input gets its own chain of layers. Keras is imported only inside builders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

if TYPE_CHECKING:
    import numpy as np
from pydantic import Field, model_validator

from fmtrain.config.base import StrictModel
from fmtrain.errors import ConfigError, first_line
from fmtrain.registry import Registry, describe_choices, did_you_mean

STEPS: Registry[Callable[..., Any]] = Registry("preprocess step")

# text_vectorize's output length in int mode when sequence_length is not given.
DEFAULT_SEQUENCE_LENGTH = 64

PositiveInt = Annotated[int, Field(ge=1)]


class FeatureStepParams(StrictModel):
    input: str | None = None
    """The named input this step transforms (e.g. text, image, numeric); required when the data has several."""


class RescaleParams(FeatureStepParams):
    scale: float | None = None
    """Multiply inputs by this (e.g. 1/255); mutually exclusive with range."""
    offset: float = 0.0
    """Added after scaling."""
    range: tuple[float, float] | None = None
    """Map the training data's min..max onto this interval, e.g. [0, 1] or [-1, 1]."""

    @model_validator(mode="after")
    def _one_way(self) -> RescaleParams:
        if self.scale is not None and self.range is not None:
            raise ValueError("give either scale (with offset) or range, not both")
        if self.range is not None and self.range[0] >= self.range[1]:
            raise ValueError(f"range must be [low, high] with low < high, found {list(self.range)}")
        return self


class StandardizeParams(FeatureStepParams):
    per: Literal["feature", "global"] = "feature"
    """'feature': one mean/std per input element; 'global': one mean/std over all elements."""


class OneHotParams(StrictModel):
    num_classes: int | None = Field(None, ge=2)
    """Width of the one-hot labels (default: the data's number of classes)."""


class ReshapeParams(FeatureStepParams):
    shape: list[int] = Field(min_length=1)
    """Per-example target shape, e.g. [28, 28, 1]; -1 infers one dimension."""


class FlattenParams(FeatureStepParams):
    pass


class ResizeParams(FeatureStepParams):
    size: tuple[PositiveInt, PositiveInt]
    """[height, width] of the output images."""
    interpolation: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5",
                           "gaussian", "mitchellcubic"] = "bilinear"
    """How pixels are resampled."""
    crop_to_aspect_ratio: bool = False
    """Crop to the target aspect ratio before resizing instead of stretching."""


class AugmentParams(FeatureStepParams):
    flip: Literal["horizontal", "vertical", "horizontal_and_vertical"] | None = None
    """Random mirror images."""
    rotation: float | None = Field(None, gt=0.0, le=1.0)
    """Random rotation by up to ± this fraction of a full turn (0.05 is ±18°)."""
    zoom: float | None = Field(None, gt=0.0, lt=1.0)
    """Random zoom in or out by up to this fraction of the height and width."""
    crop: tuple[PositiveInt, PositiveInt] | None = None
    """Random [height, width] window in training; the central window in evaluation."""

    @model_validator(mode="after")
    def _something_to_do(self) -> AugmentParams:
        if self.flip is None and self.rotation is None and self.zoom is None and self.crop is None:
            raise ValueError("give at least one of flip, rotation, zoom or crop")
        return self


class TextVectorizeParams(FeatureStepParams):
    max_tokens: int | None = Field(10000, ge=3)
    """Vocabulary size, padding and out-of-vocabulary tokens included (None: every training token)."""
    output_mode: Literal["int", "multi_hot", "count", "tf_idf"] = "int"
    """int: token ids padded to sequence_length (0 pads, 1 is out of vocabulary); multi_hot, count,
    tf_idf: one vector of vocabulary size per text."""
    sequence_length: int | None = Field(None, ge=1)
    """int mode: tokens kept per text, padded or truncated (default 64)."""
    ngrams: int | None = Field(None, ge=1, le=5)
    """Also index word n-grams up to this length (2: words and word pairs)."""
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation"] | None = (
        "lower_and_strip_punctuation")
    """Clean-up before splitting into tokens (None: none)."""
    split: Literal["whitespace", "character"] = "whitespace"
    """Tokens are words or characters."""

    @model_validator(mode="after")
    def _length_needs_int_mode(self) -> TextVectorizeParams:
        if self.sequence_length is not None and self.output_mode != "int":
            raise ValueError(f"sequence_length applies to output_mode int, not {self.output_mode}; remove it")
        return self


class LookupParams(FeatureStepParams):
    output_mode: Literal["int", "one_hot", "multi_hot", "count"] = "int"
    """int: index per value (out-of-vocabulary values first, from 0); one_hot, multi_hot, count: vectors."""
    max_tokens: int | None = Field(None, ge=2)
    """Keep the most frequent values; the size includes the out-of-vocabulary indices (None: every value)."""
    num_oov_indices: int = Field(1, ge=1)
    """Indices for values not seen in training (several: values hashed among them)."""


# --------------------------------------------------------------------------- numeric steps


@STEPS.register("rescale", params=RescaleParams)
def _rescale(params: RescaleParams, x_train: np.ndarray, info) -> list[Any]:
    """Scale inputs by a constant, or map the training min..max onto a range."""
    import keras
    import numpy as np

    _require_numbers(x_train)
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
    import numpy as np

    _require_numbers(x_train)
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
    import numpy as np

    per_example = int(np.prod(x_train.shape[1:]))
    target = list(params.shape)
    known = int(np.prod([d for d in target if d != -1]))
    if target.count(-1) > 1 or (-1 not in target and known != per_example) or (
        -1 in target and per_example % known
    ):
        raise ValueError(
            f"cannot reshape examples of shape {list(x_train.shape[1:])} ({per_example} values) to {target}"
        )
    return [keras.layers.Reshape(tuple(target))]


@STEPS.register("flatten", params=FlattenParams)
def _flatten(params: FlattenParams, x_train: np.ndarray, info) -> list[Any]:
    """Flatten each example to one vector."""
    import keras

    return [keras.layers.Flatten()]


# --------------------------------------------------------------------------- image steps


@STEPS.register("resize", params=ResizeParams)
def _resize(params: ResizeParams, x_train: np.ndarray, info) -> list[Any]:
    """Resize images to a fixed height and width inside the model, so eval images of any size fit."""
    import keras

    _require_images(x_train)
    height, width = params.size
    return [keras.layers.Resizing(height, width, interpolation=params.interpolation,
                                  crop_to_aspect_ratio=params.crop_to_aspect_ratio)]


@STEPS.register("augment", params=AugmentParams)
def _augment(params: AugmentParams, x_train: np.ndarray, info) -> list[Any]:
    """Random flips, rotations, zooms and crops of images, in training only."""
    import keras

    _require_images(x_train)
    layers: list[Any] = []
    if params.flip is not None:
        layers.append(keras.layers.RandomFlip(params.flip))
    if params.rotation is not None:
        layers.append(keras.layers.RandomRotation(params.rotation))
    if params.zoom is not None:
        layers.append(keras.layers.RandomZoom(params.zoom))
    if params.crop is not None:
        height, width = params.crop
        if height > x_train.shape[1] or width > x_train.shape[2]:
            raise ValueError(
                f"crop {[height, width]} is larger than the images ({x_train.shape[1]}×{x_train.shape[2]})"
            )
        # RandomCrop passes whole images through outside training (Keras 3.15), so a CenterCrop,
        # a no-op on the training crops, gives evaluation the central window of the same size.
        layers += [keras.layers.RandomCrop(height, width), keras.layers.CenterCrop(height, width)]
    return layers


# --------------------------------------------------------------------------- text and id steps


@STEPS.register("text_vectorize", params=TextVectorizeParams)
def _text_vectorize(params: TextVectorizeParams, x_train: np.ndarray, info) -> list[Any]:
    """Text → token ids or bag-of-words vectors, with a vocabulary adapted on the training split."""
    import keras
    import numpy as np

    if np.asarray(x_train).dtype.kind not in "OUS" or np.asarray(x_train).ndim not in (1, 2):
        raise ValueError(f"needs one string per example, found {_describe(x_train)}")
    length = None
    if params.output_mode == "int":
        length = params.sequence_length or DEFAULT_SEQUENCE_LENGTH
    layer = keras.layers.TextVectorization(
        max_tokens=params.max_tokens, standardize=params.standardize, split=params.split,
        ngrams=params.ngrams, output_mode=params.output_mode, output_sequence_length=length,
    )
    layer.adapt(np.asarray(x_train).reshape(-1))
    return [layer]


@STEPS.register("lookup", params=LookupParams)
def _lookup(params: LookupParams, x_train: np.ndarray, info) -> list[Any]:
    """Strings or integer ids → indices (or one-hot vectors) from the training values; unseen → OOV."""
    import keras
    import numpy as np

    kind = np.asarray(x_train).dtype.kind
    if kind in "OUS":
        cls = keras.layers.StringLookup
    elif kind in "iu":
        cls = keras.layers.IntegerLookup
    else:
        raise ValueError(f"needs strings or integer ids, found {_describe(x_train)}")
    layer = cls(max_tokens=params.max_tokens, num_oov_indices=params.num_oov_indices,
                output_mode=params.output_mode)
    layer.adapt(np.asarray(x_train).reshape(-1))
    return [layer]


@STEPS.register("one_hot", params=OneHotParams)
def _one_hot(params: OneHotParams, x_train: np.ndarray, info) -> list[Any]:
    """One-hot encode class labels (for categorical_crossentropy)."""
    return []  # a label step: see one_hot_classes


LABEL_STEPS = frozenset({"one_hot"})


def _describe(x) -> str:
    import numpy as np

    x = np.asarray(x)
    return f"examples of shape {list(x.shape[1:])} and dtype {x.dtype}"


def _require_numbers(x) -> None:
    import numpy as np

    if np.asarray(x).dtype.kind not in "biuf":
        raise ValueError(f"needs numbers, found {_describe(x)}; text goes through text_vectorize or lookup")


def _require_images(x) -> None:
    import numpy as np

    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind not in "biuf":
        hint = (f"; add '- reshape: {{shape: {list(x.shape[1:]) + [1]}}}' before it"
                if x.ndim == 3 and x.dtype.kind in "biuf" else "")
        raise ValueError(f"needs images of shape (height, width, channels), found {_describe(x)}{hint}")


# --------------------------------------------------------------------------- fitting


SINGLE_INPUT = "inputs"
"""The name of the one input of array data (as in :func:`fmtrain.models.input_dtypes`)."""


def fit_feature_layers(steps: list, x_train, info) -> list[Any] | dict[str, list[Any]]:
    """Fit every feature step on the training inputs, in order, as Keras layers.

    Args:
        steps: ``Config.preprocess`` (validated step items); label steps are skipped.
        x_train: raw training inputs: one array, or a dict of named arrays.
        info: the data's ``DataInfo``.

    Returns:
        For one array, the layers to apply in order; for named inputs, a dict input name →
        its layers (empty for an input no step names). Each step is fitted on what the
        earlier steps of its input produce (rescale, then standardize).

    Raises:
        ConfigError: a step names no input or an unknown one (named inputs), names one on
            single-array data, or does not fit its input's data.
    """
    from fmtrain.dtypes import as_fed

    named = isinstance(x_train, dict)
    current = {k: as_fed(v) for k, v in x_train.items()} if named else {SINGLE_INPUT: as_fed(x_train)}
    targets = [(index, item, _target(index, item, current, named)) for index, item in enumerate(steps)
               if item.step_name not in LABEL_STEPS]
    chains: dict[str, list[Any]] = {name: [] for name in current}
    for position, (index, item, name) in enumerate(targets):
        where = f"preprocess.{index}.{item.step_name}"
        try:
            new_layers = STEPS.get(item.step_name).build(item.params, current[name], info)
            # Only a later step on the same input needs this step's output.
            if any(later == name for _, _, later in targets[position + 1:]):
                current[name] = _apply(new_layers, current[name])
        except (ValueError, TypeError) as err:
            input_note = f" (input '{name}')" if named else ""
            raise ConfigError(f"{where}{input_note}: {first_line(err)}") from None
        chains[name].extend(new_layers)
    return chains if named else chains[SINGLE_INPUT]


def _target(index: int, item, inputs: dict[str, np.ndarray], named: bool) -> str:
    chosen = item.params.input
    where = f"preprocess.{index}.{item.step_name}"
    if not named:
        if chosen is not None:
            raise ConfigError(f"{where}.input: the data has a single input; remove input: {chosen}")
        return SINGLE_INPUT
    if chosen is None:
        raise ConfigError(
            f"{where}: the data has several inputs ({describe_choices(inputs)}); "
            f"say which this step transforms, e.g. input: {sorted(inputs)[0]}"
        )
    if chosen not in inputs:
        raise ConfigError(
            f"{where}.input: no input named '{chosen}'{did_you_mean(chosen, inputs)}; "
            f"the data's inputs are {describe_choices(inputs)}"
        )
    return chosen


def _apply(layers: list[Any], x: np.ndarray) -> np.ndarray:
    import keras

    for layer in layers:
        x = keras.ops.convert_to_numpy(layer(x))
    return x


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
