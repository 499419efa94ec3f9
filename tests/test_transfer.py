"""model.init_from: the body is copied, the head starts fresh, and that beats training from scratch.

The source learns the ten digits on one half of scikit-learn's digits; the target is the other
half under another labelling (digit d is class (d + 5) % 10), so a copied head would predict
the wrong classes and only a fresh one can learn the new ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from typer.testing import CliRunner  # noqa: E402

from fmtrain.cli import app  # noqa: E402

# The budget: 10% of the target half for training (90 examples), 3 epochs at Adam's 0.002.
# Over seeds 1-5 scratch reached 0.30-0.42 test accuracy and the transferred body 0.67-0.81.
BUDGET = {"test_split": 0.9, "epochs": 3}


def _config(tmp_path: Path, name: str, data: Path, seed: int, epochs: int, test_split: float, **model) -> Path:
    config = {
        "name": name, "seed": seed,
        "data": {"source": "npz", "path": str(data), "test_split": test_split, "batch_size": 32},
        "preprocess": [{"rescale": {"scale": 0.0625}}],
        "model": {"type": "mlp", "hidden_units": [64], **model},
        "optimizer": {"name": "adam", "learning_rate": 0.002},
        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], "train": {"epochs": epochs},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, run_dir: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["fit", str(config), "--run-dir", str(run_dir), "--quiet", *args])
    assert result.exit_code == 0, result.output
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """The source run (ten digits, first half) and the target data (other half, relabelled)."""
    from sklearn.datasets import load_digits

    tmp = tmp_path_factory.mktemp("transfer")
    digits = load_digits()
    x, y, half = digits.data.astype(np.float32), digits.target, len(digits.target) // 2
    np.savez(tmp / "source.npz", x=x[:half], y=y[:half])
    np.savez(tmp / "target.npz", x=x[half:], y=(y[half:] + 5) % 10)
    source_run = tmp / "source"
    metrics = _fit(_config(tmp, "source", tmp / "source.npz", seed=42, epochs=15, test_split=0.2), source_run)
    assert metrics["final"]["test"]["accuracy"] > 0.9
    return source_run, tmp / "target.npz"


def _built_model(config: Path):
    """The model fit builds for ``config``, before any training, with model.init_from applied."""
    from fmtrain import data as data_layer
    from fmtrain.config import load_config
    from fmtrain.models import build_model, input_dtypes
    from fmtrain.preprocess import fit_feature_layers
    from fmtrain.targets import Targets
    from fmtrain.transfer import start_transfer

    cfg = load_config(config)
    splits = data_layer.build(cfg.data, seed=cfg.seed)
    model = build_model(cfg.model, input_shape=splits.info.input_shape, name=cfg.name,
                        output=Targets.from_config(cfg, splits.info).output,
                        input_dtypes=input_dtypes(splits.train.x),
                        preprocessing=fit_feature_layers(cfg.preprocess, splits.train.x, splits.info))
    return model, start_transfer(cfg, model)


def _source_model(run: Path):
    import keras

    return keras.saving.load_model(run / "model.keras", compile=False)


def _assert_same_weights(mine, theirs) -> None:
    for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_copies_the_body_and_leaves_the_head_fresh(halves, tmp_path):
    source_run, target = halves
    config = _config(tmp_path, "target", target, seed=1, epochs=1, test_split=0.9, init_from=str(source_run))

    model, done = _built_model(config)
    source = _source_model(source_run)

    assert done["transferred"] == ["hidden_0"] and done["fresh"] == ["output"]
    _assert_same_weights(model.get_layer("hidden_0"), source.get_layer("hidden_0"))
    head = model.get_layer("output").get_weights()
    assert head[0].shape == source.get_layer("output").get_weights()[0].shape  # same shape, still not copied
    assert not np.allclose(head[0], source.get_layer("output").get_weights()[0])
    assert not np.any(head[0])  # a zero kernel: no confident random guesses on trained features


def test_a_head_for_another_number_of_classes_is_fresh_not_an_error(halves, tmp_path):
    source_run, _ = halves
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "three.npz", x=digits.data[:300].astype(np.float32), y=digits.target[:300] % 3)
    config = _config(tmp_path, "three", tmp_path / "three.npz", seed=1, epochs=1, test_split=0.2,
                     init_from=str(source_run))

    model, done = _built_model(config)

    assert model.get_layer("output").get_weights()[0].shape == (64, 3)
    assert done["transferred"] == ["hidden_0"] and done["fresh"] == ["output"]


def test_the_transferred_body_beats_scratch_on_a_small_budget(halves, tmp_path):
    source_run, target = halves
    seed = 2
    scratch = _fit(_config(tmp_path, "scratch", target, seed, **BUDGET), tmp_path / "scratch")
    transfer = _fit(_config(tmp_path, "transfer", target, seed, init_from=str(source_run), **BUDGET),
                    tmp_path / "transfer")

    scratch_accuracy = scratch["final"]["test"]["accuracy"]
    transfer_accuracy = transfer["final"]["test"]["accuracy"]
    assert transfer_accuracy > scratch_accuracy + 0.15, (scratch_accuracy, transfer_accuracy)
    assert transfer["data"]["train"] < 100  # the budget really is small
    block = transfer["transfer"]
    assert block["init_from"] == str(source_run)
    assert block["transferred"] == ["hidden_0"] and block["fresh"] == ["output"]
    assert "transfer" not in scratch


def test_a_frozen_body_stays_the_source_body_while_the_head_learns(halves, tmp_path):
    source_run, target = halves
    config = _config(tmp_path, "frozen", target, seed=1, init_from=str(source_run), freeze=["hidden_0"], **BUDGET)
    metrics = _fit(config, tmp_path / "frozen")

    trained, source = _source_model(tmp_path / "frozen"), _source_model(source_run)
    _assert_same_weights(trained.get_layer("hidden_0"), source.get_layer("hidden_0"))
    assert np.any(trained.get_layer("output").get_weights()[0])
    assert metrics["transfer"]["frozen_at_start"] == ["hidden_0"] and metrics["transfer"]["frozen"] == ["hidden_0"]
    assert metrics["final"]["test"]["accuracy"] > 0.5


# --------------------------------------------------------------------------- which layers are the head


def _keras():
    import keras

    return keras


def test_the_head_is_found_behind_weightless_layers():
    from fmtrain.transfer import head_layers

    keras = _keras()
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="hidden")(inputs)
    x = keras.layers.Dense(2, name="logits")(x)
    x = keras.layers.Activation("softmax", name="probabilities")(x)
    x = keras.layers.Activation("linear", dtype="float32", name="output_float32")(x)  # mixed precision's cast

    assert head_layers(keras.Model(inputs, x)) == ["logits"]


def test_a_dot_product_output_has_no_head():
    from fmtrain.transfer import head_layers

    keras = _keras()
    users, items = keras.Input((1,), dtype="int32"), keras.Input((1,), dtype="int32")
    u = keras.layers.Flatten()(keras.layers.Embedding(10, 4, name="user_factors")(users))
    v = keras.layers.Flatten()(keras.layers.Embedding(10, 4, name="item_factors")(items))

    assert head_layers(keras.Model([users, items], keras.layers.Dot(axes=1)([u, v]))) == []


def test_the_head_of_a_nested_model_is_its_last_layer():
    from fmtrain.transfer import head_layers

    keras = _keras()
    inputs = keras.Input((4,))
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="inner_hidden"),
                              keras.layers.Dense(2, name="inner_output")])

    assert head_layers(keras.Model(inputs, inner(inputs))) == ["inner_output"]
