"""The names `fmtrain validate` checks without Keras are exactly the ones Keras resolves."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")

from fmtrain.config import keras_names  # noqa: E402


def test_every_listed_name_resolves_in_the_installed_keras():
    for layer in keras_names.LAYERS:
        assert hasattr(keras.layers, layer), layer
    from fmtrain.optim import optimizer_class_named

    for name in keras_names.OPTIMIZERS:
        assert optimizer_class_named(name) is not None, name
    for name in keras_names.LOSSES:
        assert keras.losses.get(name) is not None, name
    from fmtrain.metrics import keras_metric_class

    for name in keras_names.METRICS:
        assert keras_metric_class(name) is not None, name
    for name in keras_names.ACTIVATIONS:
        assert keras.activations.get(name) is not None, name


def test_no_public_keras_layer_is_missing():
    """A new Keras adds layers: regenerate with `make keras-names` when this fails."""
    public = {n for n in dir(keras.layers) if not n.startswith("_") and isinstance(getattr(keras.layers, n), type)
              and issubclass(getattr(keras.layers, n), keras.layers.Layer)}
    assert public == set(keras_names.LAYERS)
