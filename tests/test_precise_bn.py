"""Precise batch norm: a short run's saved model does what its epoch lines said, and a gap is said.

The premise, kept as a test: the default ``cnn`` (BatchNormalization, momentum 0.99) trained for
15 epochs on 3 × 30 small images scores about 1.0 in the epoch line and chance (0.33) on every
split in inference mode, because ~30 steps are too few for the moving averages to catch up.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

import keras  # noqa: E402
from stopping import StopAt  # noqa: E402

from fmtrain.cli import app  # noqa: E402
from fmtrain.config.schema import MetricConfig  # noqa: E402
from fmtrain.engine import precise_bn  # noqa: E402
from fmtrain.engine.mode_gap import SCORE_MARGIN, mode_gap_warning  # noqa: E402
from fmtrain.engine.precise_bn import batch_rows, recompute_bn_statistics  # noqa: E402
from fmtrain.engine.trainer import Trainer  # noqa: E402
from fmtrain.losses import build_loss  # noqa: E402
from fmtrain.metrics import MetricContext, build_metrics  # noqa: E402
from fmtrain.models.vision import CNNParams  # noqa: E402

runner = CliRunner()
CLASSES, PER_CLASS, SIDE = 3, 30, 32


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def write_image_folder(root: Path) -> Path:
    """3 classes of 30 RGB 32×32 images: horizontal stripes, vertical stripes, a checkerboard,
    each shifted at random, with noise. Same mean brightness, so only the shapes tell them apart."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    patterns = {"hstripes": (yy // 4) % 2, "vstripes": (xx // 4) % 2, "checker": ((yy // 4) + (xx // 4)) % 2}
    for name, pattern in patterns.items():
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            shifted = np.roll(pattern, tuple(rng.integers(0, 8, 2)), axis=(0, 1))
            pixels = 128 + 160 * (shifted[..., None] - 0.5) + rng.normal(0, 30, (SIDE, SIDE, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def fit_folder_cnn(tmp: Path, *extra: str):
    folder = tmp / "images"
    if not folder.exists():
        write_image_folder(folder)
    config = tmp / "cnn.yaml"
    config.write_text(f"""name: folder_cnn
data: {{source: image_folder, path: {folder}, validation_split: 0.2, test_split: 0.2}}
model: {{type: cnn}}
train: {{epochs: 15}}
""")
    run = tmp / "run"
    result = invoke("fit", config, "--run-dir", run, *extra)
    return run, result


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def last_epoch(run: Path) -> dict[str, float]:
    header, *rows = (run / "history.csv").read_text().splitlines()
    return dict(zip(header.split(","), map(float, rows[-1].split(",")), strict=True))


@pytest.fixture(scope="module")
def without_precise_bn(tmp_path_factory):
    """What fmtrain did before precise batch norm: the same run with it switched off."""
    run, result = fit_folder_cnn(tmp_path_factory.mktemp("before"), "--set", "train.precise_bn_samples=0")
    assert result.exit_code == 0, result.output
    return run, result


@pytest.fixture(scope="module")
def with_precise_bn(tmp_path_factory):
    run, result = fit_folder_cnn(tmp_path_factory.mktemp("after"))
    assert result.exit_code == 0, result.output
    return run, result


def test_premise_a_short_cnn_run_is_right_in_training_mode_and_at_chance_in_inference_mode(without_precise_bn):
    run, _ = without_precise_bn
    assert CNNParams().batch_norm is True  # the default cnn normalizes its batches
    metrics = metrics_of(run)
    assert last_epoch(run)["accuracy"] >= 0.9
    assert metrics["final"]["train"]["accuracy"] < 0.6  # chance is 1/3
    assert "precise_bn" not in metrics


def test_the_gap_is_said_in_the_summary_the_report_and_metrics_json(without_precise_bn):
    run, result = without_precise_bn
    warnings = metrics_of(run)["warnings"]
    assert len(warnings) == 1 and "train accuracy" in warnings[0] and "inference mode" in warnings[0]
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "warning: train accuracy" in output and "trust the final metrics" in output
    markdown = (run / "report.md").read_text()
    assert f"> **Warning:** {warnings[0]}" in markdown
    assert "Warning:</strong> train accuracy" in (run / "report.html").read_text()


def test_precise_bn_makes_the_saved_model_match_its_training(with_precise_bn):
    run, result = with_precise_bn
    metrics = metrics_of(run)
    final, trained = metrics["final"], last_epoch(run)
    assert abs(final["train"]["accuracy"] - trained["accuracy"]) <= SCORE_MARGIN
    assert final["val"]["accuracy"] >= 0.9 and final["test"]["accuracy"] >= 0.9  # chance is 1/3
    # 54 training images in batches of 32: one epoch's worth, the last batch filled.
    assert metrics["precise_bn"] == {"layers": 2, "batches": 2, "batch_size": 32, "samples": 64,
                                     "seconds": metrics["precise_bn"]["seconds"]}
    assert metrics["warnings"] == []
    assert "warning" not in result.output.lower() and "batch norm" in result.output
    assert "statistics of 2 layers recomputed" in (run / "report.md").read_text()
    # The saved model carries the statistics and the momentum it was built with.
    from fmtrain.models import ensure_custom_layers

    ensure_custom_layers()
    saved = keras.saving.load_model(run / "model.keras", compile=False)
    norms = [layer for layer in saved.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 2 and all(layer.momentum == 0.99 for layer in norms)


def test_a_resumed_run_recomputes_the_statistics_and_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "images")
    settings = ["--set", "train.epochs=4", "--set", "train.deterministic=true", "--set", "train.jit_compile=false",
                "--set", "train.checkpoint.every_steps=2", "--quiet"]
    whole, result = fit_folder_cnn(tmp_path, *settings)
    assert result.exit_code == 0, result.output

    import fmtrain.fit

    callbacks = fmtrain.fit._callbacks
    monkeypatch.setattr(fmtrain.fit, "_callbacks", lambda *a: [*callbacks(*a), StopAt(3, "SIGTERM")])
    config, parted = tmp_path / "cnn.yaml", tmp_path / "parted"
    stopped = invoke("fit", config, "--run-dir", parted, *settings)
    assert stopped.exit_code == 130, stopped.output
    monkeypatch.setattr(fmtrain.fit, "_callbacks", callbacks)
    resumed = invoke("fit", "--resume", parted, "--quiet")
    assert resumed.exit_code == 0, resumed.output

    expected, got = metrics_of(whole), metrics_of(parted)
    assert got["resume"]["from_step"] == 4 and got["global_step"] == expected["global_step"] == 8
    assert got["final"] == expected["final"]
    assert {k: v for k, v in got["precise_bn"].items() if k != "seconds"} == \
        {k: v for k, v in expected["precise_bn"].items() if k != "seconds"}
    a = keras.saving.load_model(whole / "model.keras", compile=False)
    b = keras.saving.load_model(parted / "model.keras", compile=False)
    for x, y in zip(a.variables, b.variables, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)


# ----------------------------------------------------------------- the pass itself, on a tiny model


def _tiny_trainer():
    """Dense → BN inside a nested model, a frozen BN, dropout: trained a few steps with Adam."""
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense_in"),
                              keras.layers.BatchNormalization(name="bn_inner")], name="inner")
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(5, name="dense_mid")(inner(inputs))
    hidden = keras.layers.BatchNormalization(name="bn_frozen", trainable=False)(hidden)
    hidden = keras.layers.Dropout(0.5, name="drop")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(hidden))
    metrics = build_metrics([MetricConfig(name="accuracy")], MetricContext("classification", 2, False, 2))
    trainer = Trainer(model, keras.optimizers.Adam(0.01), build_loss("sparse_categorical_crossentropy", {}), metrics,
                      jit_compile=False)
    rng = np.random.default_rng(1)
    x = rng.normal(3, 2, (48, 4)).astype(np.float32)
    y = (x[:, 0] > 3).astype(np.int32)
    trainer.fit(x, y, epochs=2, batch_size=8, seed=0)
    return trainer, x


def _values(variables) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


@pytest.mark.parametrize("samples, batches", [(precise_bn.PRECISE_BN_SAMPLES, 6), (16, 2)])
def test_moving_statistics_become_the_average_batch_moments_and_nothing_else_changes(samples, batches):
    trainer, x = _tiny_trainer()
    model = trainer.model
    bn = model.get_layer("inner").get_layer("bn_inner")
    frozen = model.get_layer("bn_frozen")
    statistics = {id(bn.moving_mean), id(bn.moving_variance)}
    others = [v for v in model.variables if id(v) not in statistics]
    before, optimizer_before = _values(others), _values(trainer.optimizer.variables)

    done = recompute_bn_statistics(model, x, batch_size=8, seed=0, samples=samples)

    assert done is not None and (done.layers, done.batches, done.samples) == (1, batches, batches * 8)
    dense = model.get_layer("inner").get_layer("dense_in")
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    rows = batch_rows(len(x), 8, seed=0, samples=samples)
    assert rows.shape == (batches, 8)
    activations = x[rows] @ kernel + bias  # (batches, 8, 3): what bn_inner sees
    np.testing.assert_allclose(bn.moving_mean.numpy(), activations.mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), activations.var(axis=1).mean(axis=0), rtol=1e-4, atol=1e-6)
    assert bn.momentum == 0.99  # put back: the saved config is the one trained with
    # Trainable weights, the frozen layer, the dropout seed state and the optimizer: untouched.
    for variable, value in zip(others, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    for variable, value in zip(trainer.optimizer.variables, optimizer_before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    assert frozen.trainable is False


def test_no_trainable_batch_norm_no_pass():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(trainable=False)(keras.layers.Dense(3)(inputs)))
    assert recompute_bn_statistics(model, np.ones((8, 4), np.float32), batch_size=4, seed=0) is None
    assert recompute_bn_statistics(model, np.ones((8, 4), np.float32), batch_size=4, seed=0, samples=0) is None


# ----------------------------------------------------------------- the margin rule


def test_margins_warn_only_for_inference_clearly_worse_than_training():
    def warn(trained, now, examples=3200, batch_size=32):
        return mode_gap_warning(trained, 15, now, examples=examples, batch_size=batch_size, precise_bn=True)

    assert warn({"loss": 0.01, "accuracy": 1.0}, {"loss": 6.7, "accuracy": 0.3333})
    assert warn({"loss": 0.4, "accuracy": 0.9}, {"loss": 0.42, "accuracy": 0.85}) is None
    # Dropout and augmentation make training mode the worse one: nothing to say.
    assert warn({"loss": 0.9, "accuracy": 0.6}, {"loss": 0.2, "accuracy": 0.95}) is None
    # The loss alone (regression): 50% higher, and more than a near-zero wobble.
    assert "loss 3" in warn({"loss": 1.0, "mae": 0.8}, {"loss": 3.0, "mae": 1.5})
    assert warn({"loss": 0.002}, {"loss": 0.004}) is None
    # 33 examples in batches of 32: 31 of the last epoch's 64 rows are fill, which alone can move
    # its accuracy by 0.48, so a 0.3 gap is no proof; the same gap on 3200 examples is.
    assert warn({"loss": 0.1, "accuracy": 0.9}, {"loss": 0.12, "accuracy": 0.6}, examples=33) is None
    assert warn({"loss": 0.1, "accuracy": 0.9}, {"loss": 0.12, "accuracy": 0.6})
