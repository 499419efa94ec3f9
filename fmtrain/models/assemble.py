"""Put preprocessing layers and a registered model body into one keras.Model."""

from __future__ import annotations

from typing import Any

from fmtrain.models.registry import MODELS, OutputSpec


def build_model(model_cfg, *, input_shape, preprocessing: list[Any], output: OutputSpec, name: str,
                input_dtypes: dict[str, str] | None = None):
    """Build the full model: raw inputs → preprocessing layers → ``model.type``'s body.

    Args:
        model_cfg: the validated ``model`` section.
        input_shape: per-example shape of the raw inputs (a dict for named inputs).
        preprocessing: fitted Keras layers from :func:`fmtrain.preprocess.fit_preprocessing`.
        output: the output layer the task and loss need.
        name: the model's name (the run's name).
        input_dtypes: Keras dtype per input name ("inputs" for a single array); see :func:`input_dtypes`.

    Returns:
        An unbuilt-optimizer, uncompiled ``keras.Model`` taking raw float32 inputs.

    Raises:
        ConfigError: a layer cannot be built or applied.
    """
    import keras

    dtypes = input_dtypes or {}
    if isinstance(input_shape, dict):
        inputs = {key: keras.Input(shape=tuple(shape), name=key, dtype=dtypes.get(key, "float32"))
                  for key, shape in input_shape.items()}
        x = inputs
    else:
        inputs = keras.Input(shape=tuple(input_shape), name="inputs", dtype=dtypes.get("inputs", "float32"))
        x = inputs
        for layer in preprocessing:
            x = layer(x)
    outputs = MODELS.get(model_cfg.type).build(model_cfg, x, output)
    return keras.Model(inputs, outputs, name=_keras_name(name))


def _keras_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def input_dtypes(x) -> dict[str, str]:
    """Keras input dtypes for raw arrays: strings stay strings, integer ids stay int32,
    everything numeric else (uint8 pixels included) becomes float32."""
    import numpy as np

    def dtype_of(array) -> str:
        kind = np.asarray(array).dtype.kind
        if kind in "OUS":
            return "string"
        if kind in "iu" and np.asarray(array).dtype != np.uint8:
            return "int32"
        return "float32"

    if isinstance(x, dict):
        return {key: dtype_of(value) for key, value in x.items()}
    return {"inputs": dtype_of(x)}
