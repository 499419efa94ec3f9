"""The names and arguments `fmtrain validate` checks without Keras are exactly the ones Keras resolves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def test_every_generated_table_matches_the_installed_keras():
    """Names, arguments and their kinds: a Keras upgrade that changes any fails here until `make keras-names`."""
    spec = importlib.util.spec_from_file_location(
        "gen_keras_names", Path(__file__).resolve().parents[1] / "scripts" / "gen_keras_names.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)

    tables = generator.tables()

    assert {"OPTIMIZER_ARGS", "LOSS_ARGS", "METRIC_ARGS", "METRIC_REQUIRED_ARGS"} <= set(tables)
    for name, table in tables.items():
        assert getattr(keras_names, name) == table, f"{name} differs from the installed Keras: run make keras-names"


def test_recorded_arguments_are_the_ones_keras_accepts():
    """Each recorded argument is a keyword of what fmtrain calls (the generator could read the wrong thing)."""
    import inspect

    from fmtrain.metrics import keras_metric_class
    from fmtrain.optim import optimizer_class_named

    for name, arguments in keras_names.OPTIMIZER_ARGS.items():
        assert set(arguments) <= set(inspect.signature(optimizer_class_named(name).__init__).parameters), name
    for name, arguments in keras_names.LOSS_ARGS.items():
        assert set(arguments) <= set(inspect.signature(keras.losses.get(name)).parameters), name
    for name, arguments in keras_names.METRIC_ARGS.items():
        assert set(arguments) <= set(inspect.signature(keras_metric_class(name).__init__).parameters), name
    assert keras_names.OPTIMIZER_ARGS["adam"]["beta_1"] == "float"
    assert keras_names.OPTIMIZER_ARGS["sgd"]["nesterov"] == "bool"
    assert keras_names.LOSS_ARGS["huber"] == {"delta": "float"}
