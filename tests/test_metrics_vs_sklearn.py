"""Precision, recall, F1 and accuracy as fmtrain evaluates them, against scikit-learn's.

Evaluation pads the last batch with zero-weight rows (engine/feeds.padded), so every case
here uses a number of examples that is not a multiple of the evaluation batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

from fmtrain.config.schema import MetricConfig  # noqa: E402
from fmtrain.metrics import MetricContext, build_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N, FEATURES, EVAL_BATCH = 150, 6, 64  # 150 = 2 full batches + 22 real rows and 42 padding rows
SKLEARN = {"precision": sklearn_metrics.precision_score, "recall": sklearn_metrics.recall_score,
           "f1": sklearn_metrics.f1_score}


def _model(units: int, activation: str | None, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(inputs))


def _evaluate(model, x, y, metrics: list[str], ctx: MetricContext, loss: str, average: str | None = None,
              batch_size: int = EVAL_BATCH):
    import keras

    from fmtrain.engine.trainer import Trainer

    configured = [MetricConfig.model_validate({m: {"average": average}} if average and m in SKLEARN else m)
                  for m in metrics]
    trainer = Trainer(model, None, keras.losses.get(loss), build_metrics(configured, ctx), jit_compile=False)
    return trainer.evaluate(x, y, batch_size=batch_size)


def _data(classes: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, FEATURES)).astype(np.float32), rng.integers(0, classes, N).astype(np.int32)


def _check(results: dict, truth: np.ndarray, predicted: np.ndarray, average: str):
    assert len(set(predicted.tolist())) > 1, "a model that predicts one class tests nothing"
    for name, score in SKLEARN.items():
        expected = score(truth, predicted, average=average, zero_division=0)
        assert results[name] == pytest.approx(expected, abs=1e-5), name
    assert results["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(truth, predicted), abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_two_softmax_units_default_to_the_binary_average(seed):
    x, y = _data(2, seed)
    model = _model(2, "softmax", seed)

    results = _evaluate(model, x, y, ["accuracy", "precision", "recall", "f1"],
                        MetricContext("classification", 2, False, 2), "sparse_categorical_crossentropy")

    _check(results, y, np.argmax(model.predict(x, verbose=0), axis=-1), "binary")


@pytest.mark.parametrize("seed", [0, 1])
def test_one_sigmoid_unit_matches_sklearn(seed):
    x, y = _data(2, seed)
    model = _model(1, "sigmoid", seed)

    results = _evaluate(model, x, y.astype(np.float32).reshape(-1, 1), ["accuracy", "precision", "recall", "f1"],
                        MetricContext("classification", 2, False, 1), "binary_crossentropy")

    _check(results, y, (model.predict(x, verbose=0)[:, 0] > 0.5).astype(int), "binary")


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_multi_class_averages_match_sklearn(average):
    x, y = _data(4, 2)
    model = _model(4, "softmax", 2)

    results = _evaluate(model, x, y, ["accuracy", "precision", "recall", "f1"],
                        MetricContext("classification", 4, False, 4), "sparse_categorical_crossentropy", average)

    _check(results, y, np.argmax(model.predict(x, verbose=0), axis=-1), average)


def test_padding_rows_count_nowhere():
    """The padding copies the first row; a first row the model gets wrong would inflate the errors."""
    x, y = _data(2, 3)
    model = _model(2, "softmax", 3)
    predicted = np.argmax(model.predict(x, verbose=0), axis=-1)
    y[0] = 1 - predicted[0]

    ctx = MetricContext("classification", 2, False, 2)
    names, loss = ["accuracy", "precision", "recall", "f1"], "sparse_categorical_crossentropy"
    padded = _evaluate(model, x, y, names, ctx, loss)  # 42 copies of row 0 with weight 0
    exact = _evaluate(model, x, y, names, ctx, loss, batch_size=50)  # 150 = 3 × 50: no padding

    _check(padded, y, predicted, "binary")
    assert padded == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_one_logit_unit_is_positive_above_zero(seed):
    x, y = _data(2, seed)
    model = _model(1, None, seed)

    results = _evaluate(model, x, y.astype(np.float32).reshape(-1, 1), ["accuracy", "precision", "recall", "f1", "auc"],
                        MetricContext("classification", 2, False, 1, from_logits=True), "binary_crossentropy")

    logits = model.predict(x, verbose=0)[:, 0]
    assert np.any((logits > 0) != (logits > 0.5)), "no logit between 0 and 0.5: the case is not exercised"
    _check(results, y, (logits > 0).astype(int), "binary")
    # Keras interpolates the curve over 200 thresholds; sklearn's is exact.
    assert results["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(y, logits), abs=0.003)


@pytest.mark.parametrize("one_hot", [False, True])
def test_multi_class_auc_on_logits_is_on_probabilities(one_hot):
    x, y = _data(4, 5)
    model = _model(4, None, 5)
    labels = np.eye(4, dtype=np.float32)[y] if one_hot else y

    results = _evaluate(model, x, labels, ["auc"], MetricContext("classification", 4, one_hot, 4, from_logits=True),
                        "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy")

    probabilities = _softmax(model.predict(x, verbose=0))
    expected = sklearn_metrics.roc_auc_score(np.eye(4)[y], probabilities, average="micro")
    assert results["auc"] == pytest.approx(expected, abs=0.003)  # on raw logits: 0.456 instead of 0.436


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _fit_breast_cancer(tmp_path, name: str, loss, splits: dict):
    """fit breast_cancer with a small MLP and ``loss``; the reloaded model, the test split and the
    final test metrics from metrics.json."""
    import keras
    from typer.testing import CliRunner

    from fmtrain import data as data_layer
    from fmtrain.cli import app
    from fmtrain.config import load_config

    config = {
        "name": name, "seed": 5, "data": {"source": "breast_cancer", **splits},
        "preprocess": [{"standardize": {}}], "model": {"type": "mlp", "hidden_units": [8]},
        "loss": loss, "metrics": ["accuracy", "precision", "recall", "f1"],
        "optimizer": {"name": "adam", "learning_rate": 0.001}, "train": {"epochs": 2},
    }
    path = tmp_path / "bc.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(path), "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    cfg = load_config(run_dir / "config.yaml")
    test = data_layer.build(cfg.data, seed=cfg.seed).test
    return model, test, json.loads((run_dir / "metrics.json").read_text())["final"]["test"]


def test_breast_cancer_with_one_sigmoid_unit_end_to_end(tmp_path):
    """fit on breast_cancer (binary_crossentropy → one sigmoid unit); metrics.json's test values
    are sklearn's on the reloaded model's predictions for the 114 test rows."""
    model, test, final = _fit_breast_cancer(tmp_path, "bc", "binary_crossentropy",
                                            {"test_split": 0.2, "validation_split": 0.2})
    assert model.output_shape == (None, 1)
    assert len(test) % 256 != 0
    predicted = (model.predict(test.x, verbose=0)[:, 0] > 0.5).astype(int)
    _check(final, test.y, predicted, "binary")


def test_one_logit_unit_end_to_end(tmp_path):
    """binary_crossentropy with from_logits: the output is a logit, positive above 0, not above 0.5."""
    model, test, final = _fit_breast_cancer(tmp_path, "bc_logits", {"binary_crossentropy": {"from_logits": True}},
                                            {"test_split": 0.2})
    logits = model.predict(test.x, verbose=0)[:, 0]
    assert np.any((logits > 0) != (logits > 0.5)), "no logit between 0 and 0.5: the case is not exercised"
    _check(final, test.y, (logits > 0).astype(int), "binary")
