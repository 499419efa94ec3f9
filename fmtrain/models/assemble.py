"""Put preprocessing layers and a registered model body into one keras.Model."""

from __future__ import annotations

from typing import Any

from fmtrain.errors import ConfigError
from fmtrain.models.registry import MODELS, OutputSpec


def build_model(model_cfg, *, input_shape, preprocessing: list[Any] | dict[str, list[Any]], output: OutputSpec,
                name: str, input_dtypes: dict[str, str] | None = None, vocab_sizes: dict[str, int] | None = None):
    """Build the full model: raw inputs → preprocessing layers → ``model.type``'s body.

    Args:
        model_cfg: the validated ``model`` section.
        input_shape: per-example shape of the raw inputs (a dict for named inputs).
        preprocessing: fitted Keras layers from :func:`fmtrain.preprocess.fit_feature_layers`:
            a list for one input, a dict input name → list for named inputs.
        output: the output layer the task and loss need.
        name: the model's name (the run's name).
        input_dtypes: Keras dtype per input name ("inputs" for a single array); see :func:`input_dtypes`.
        vocab_sizes: ``DataInfo.vocab_sizes``, ids per id input made by the data layer; passed on
            to a builder that takes a ``vocab_sizes`` keyword, with the sizes of inputs whose
            last preprocessing layer is a lookup or vectorization in int mode.

    Returns:
        An unbuilt-optimizer, uncompiled ``keras.Model`` taking the raw inputs.

    Raises:
        ConfigError: a layer cannot be built or applied, or preprocessing names an unknown input.
    """
    import keras

    dtypes = input_dtypes or {}
    if isinstance(input_shape, dict):
        chains = preprocessing if isinstance(preprocessing, dict) else {}
        if not isinstance(preprocessing, dict) and preprocessing:
            raise ConfigError("preprocess: the data has named inputs; each feature step needs input: <name>")
        unknown = sorted(set(chains) - set(input_shape))
        if unknown:
            raise ConfigError(f"preprocess: no input named {unknown[0]}; the data's inputs are {sorted(input_shape)}")
        inputs = {key: keras.Input(shape=tuple(shape), name=key, dtype=dtypes.get(key, "float32"))
                  for key, shape in input_shape.items()}
        x = {key: _chain(chains.get(key, []), tensor) for key, tensor in inputs.items()}
    else:
        if isinstance(preprocessing, dict):
            raise ConfigError("preprocess: the data has a single input; remove input: from the steps")
        chains = {"inputs": preprocessing}
        inputs = keras.Input(shape=tuple(input_shape), name="inputs", dtype=dtypes.get("inputs", "float32"))
        x = _chain(preprocessing, inputs)
    builder = MODELS.get(model_cfg.type).build
    extra = {}
    if model_cfg.uses_vocab_sizes:
        extra["vocab_sizes"] = {**(vocab_sizes or {}), **_vocabulary_sizes(chains)}
    outputs = builder(model_cfg, x, output, **extra)
    if keras.mixed_precision.global_policy().compute_dtype != "float32":
        # Softmax and the loss stay in float32 under mixed precision, as Keras recommends.
        outputs = keras.layers.Activation("linear", dtype="float32", name="output_float32")(outputs)
    return keras.Model(inputs, outputs, name=_keras_name(name))


def _chain(layers: list[Any], tensor):
    for layer in layers:
        tensor = layer(tensor)
    return tensor


def _vocabulary_sizes(chains: dict[str, list[Any]]) -> dict[str, int]:
    """Ids per input whose last layer turns values into int ids with a vocabulary (TextVectorization, *Lookup)."""
    sizes = {}
    for key, layers in chains.items():
        last = layers[-1] if layers else None
        if last is not None and getattr(last, "output_mode", None) == "int" and hasattr(last, "vocabulary_size"):
            sizes[key] = int(last.vocabulary_size())
    return sizes


def _keras_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def input_dtypes(x) -> dict[str, str]:
    """Keras input dtype per input name ("inputs" for a single array), by :func:`fmtrain.dtypes.fed_dtype`."""
    from fmtrain.dtypes import fed_dtype

    if isinstance(x, dict):
        return {key: fed_dtype(value) for key, value in x.items()}
    return {"inputs": fed_dtype(x)}
