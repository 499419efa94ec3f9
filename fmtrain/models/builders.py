"""The core model families: ``sequential``, ``mlp`` and ``custom``."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any, Literal

from pydantic import Field, field_validator

from fmtrain.config import keras_names
from fmtrain.config.base import KerasActivation, check_name
from fmtrain.errors import ConfigError
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec


class SequentialParams(ModelParams):
    type: Literal["sequential"] = "sequential"
    layers: list[dict[str, dict[str, Any] | None]] = Field(min_length=1)
    """Keras layers in order, each a one-key map: ``- Dense: {units: 128, activation: relu}``.
    The input shape comes from the data."""

    @field_validator("layers")
    @classmethod
    def _known_layers(cls, layers: list[dict]) -> list[dict]:
        for item in layers:
            if len(item) != 1:
                raise ValueError(
                    f"each layer is a one-key map like '- Dense: {{units: 10}}', found keys {sorted(item)}"
                )
            check_name("Keras layer", next(iter(item)), keras_names.LAYERS)
        return [{name: dict(kwargs or {})} for item in layers for name, kwargs in item.items()]


class MLPParams(ModelParams):
    type: Literal["mlp"] = "mlp"
    hidden_units: list[int] = Field(default_factory=lambda: [128])
    """Width of each hidden Dense layer, in order."""
    activation: KerasActivation = "relu"
    """Activation of the hidden layers."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout rate after each hidden layer."""
    batch_norm: bool = False
    """Batch normalization before each hidden activation."""

    @field_validator("hidden_units")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(u < 1 for u in value):
            raise ValueError(f"every hidden layer needs at least 1 unit, found {value}")
        return value


class CustomParams(ModelParams):
    type: Literal["custom"] = "custom"
    factory: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``package.module:function`` returning a keras.Model; it may accept ``input_shape``,
    ``num_outputs`` and ``output_activation`` keywords. Only this module is imported."""
    args: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for the factory."""


def _apply(layer, tensor, where: str):
    try:
        return layer(tensor)
    except Exception as exc:  # Keras raises ValueError/TypeError with a useful message
        shape = getattr(tensor, "shape", None)
        raise ConfigError(f"{where}: cannot apply {type(layer).__name__} to input of shape {shape}: {exc}") from exc


def _flat(inputs):
    import keras

    tensors = list(inputs.values()) if isinstance(inputs, dict) else [inputs]
    flat = [keras.layers.Flatten()(t) if len(t.shape) > 2 else t for t in tensors]
    return flat[0] if len(flat) == 1 else keras.layers.Concatenate()(flat)


@MODELS.register("sequential", params=SequentialParams)
def build_sequential(params: SequentialParams, inputs, output: OutputSpec):
    """Any stack of keras.layers by class name; you write the output layer yourself."""
    import keras

    x = inputs
    for index, item in enumerate(params.layers):
        (name, kwargs), = item.items()
        where = f"model.layers.{index}.{name}"
        layer_class = getattr(keras.layers, name)
        # The seed example writes input_shape on its first layer; the data decides it here.
        # (input_dim is also a real argument of some layers, e.g. Embedding's vocabulary size.)
        takes_input_dim = "input_dim" in inspect.signature(layer_class.__init__).parameters
        kwargs = {k: v for k, v in kwargs.items() if k != "input_shape" and (k != "input_dim" or takes_input_dim)}
        try:
            layer = layer_class(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        x = _apply(layer, x, where)
    return x


@MODELS.register("mlp", params=MLPParams)
def build_mlp(params: MLPParams, inputs, output: OutputSpec):
    """Multilayer perceptron: flatten, hidden Dense layers, output sized for the task."""
    import keras

    x = _flat(inputs)
    for index, units in enumerate(params.hidden_units):
        x = keras.layers.Dense(units, name=f"hidden_{index}")(x)
        if params.batch_norm:
            x = keras.layers.BatchNormalization(name=f"hidden_{index}_bn")(x)
        x = keras.layers.Activation(params.activation, name=f"hidden_{index}_{params.activation}")(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout, name=f"hidden_{index}_dropout")(x)
    return keras.layers.Dense(output.units, activation=output.activation, name="output")(x)


@MODELS.register("custom", params=CustomParams)
def build_custom(params: CustomParams, inputs, output: OutputSpec):
    """Your own factory function, named as package.module:function."""
    module_name, function_name = params.factory.split(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.factory: cannot import module '{module_name}': {exc}") from exc
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ConfigError(f"model.factory: module '{module_name}' has no function '{function_name}'")
    offered = {
        "input_shape": (tuple(inputs.shape[1:]) if not isinstance(inputs, dict)
                        else {k: tuple(v.shape[1:]) for k, v in inputs.items()}),
        "num_outputs": output.units,
        "output_activation": output.activation,
    }
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    kwargs = {k: v for k, v in offered.items() if takes_any or k in accepted}
    try:
        model = factory(**kwargs, **params.args)
    except TypeError as exc:
        raise ConfigError(f"model.args: {params.factory} rejected its arguments: {exc}") from exc
    return _apply(model, inputs, "model.factory")
