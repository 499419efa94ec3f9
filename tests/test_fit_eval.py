"""The whole chain through the CLI, in-process: fit → run directory → eval, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from fmtrain.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def write_config(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One real digits fit shared by the tests that only read its run directory."""
    run_dir = tmp_path_factory.mktemp("runs") / "digits"
    result = invoke("fit", ROOT / "configs/digits_mlp.yaml", "--run-dir", run_dir, "--set", "train.epochs=12",
                    "--expect", "test.accuracy>=0.9")
    assert result.exit_code == 0, result.output
    return run_dir, result


def test_fit_writes_a_complete_run_directory(digits_run):
    run_dir, result = digits_run
    for name in ("config.yaml", "metrics.json", "history.csv", "model.keras", "environment.json",
                 "data_info.json", "report.md", "report.html"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["schema_version"] == 1
    assert metrics["final"]["test"]["accuracy"] >= 0.9
    assert metrics["timing"]["fit_seconds"] > 0
    assert metrics["throughput"]["train_samples_per_second"] > 0
    assert metrics["compile"]["traces"]["train"] == 1  # no retracing between epochs
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,accuracy,f1,val_loss,val_accuracy")
    assert len(history) == 1 + metrics["epochs_run"]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == 12 and resolved["data"]["shuffle"] is True  # overrides and defaults
    assert "ok   test.accuracy" in result.output


def test_eval_reloads_the_model_and_reproduces_the_test_metrics(digits_run):
    run_dir, _ = digits_run
    result = invoke("eval", run_dir)
    assert result.exit_code == 0, result.output
    evaluated = json.loads((run_dir / "eval-test.json").read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())["final"]["test"]
    assert evaluated["metrics"]["accuracy"] == pytest.approx(trained["accuracy"], abs=1e-6)
    assert evaluated["metrics"]["loss"] == pytest.approx(trained["loss"], rel=1e-5)
    report = evaluated["classification"]
    assert len(report["per_class"]) == 10 and np.sum(report["confusion_matrix"]) == evaluated["n_samples"]
    assert report["accuracy"] == pytest.approx(trained["accuracy"], abs=1e-6)
    assert "precision" in result.output and "confusion" in result.output.lower()


def test_eval_expectations_and_splits(digits_run):
    run_dir, _ = digits_run
    assert invoke("eval", run_dir, "--split", "val", "--expect", "accuracy>=0.5").exit_code == 0
    assert (run_dir / "eval-val.json").exists()
    missed = invoke("eval", run_dir, "--expect", "accuracy>=1.01")
    assert missed.exit_code == 3 and "FAIL" in missed.output
    unknown = invoke("eval", run_dir, "--expect", "acuracy>=0.5")
    assert unknown.exit_code == 2 and "did you mean 'accuracy'" in unknown.output


def test_an_existing_run_dir_is_not_overwritten_without_permission(digits_run):
    run_dir, _ = digits_run
    before = (run_dir / "metrics.json").read_bytes()
    result = invoke("fit", ROOT / "configs/digits_mlp.yaml", "--run-dir", run_dir, "--smoke")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (run_dir / "metrics.json").read_bytes() == before


def test_smoke_runs_the_whole_chain_and_expect_sets_the_exit_code(tmp_path):
    run_dir = tmp_path / "smoke"
    result = invoke("fit", ROOT / "configs/digits_mlp.yaml", "--smoke", "--run-dir", run_dir, "--quiet")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["train"] == 256 and metrics["epochs_run"] <= 2
    assert (run_dir / "eval-test.json").exists()  # reloaded and evaluated
    assert "plots/confusion_test.png" in (run_dir / "report.html").read_text()  # the report shows that eval
    assert (run_dir / "plots" / "confusion_test.png").is_file()
    missed = invoke("fit", ROOT / "configs/digits_mlp.yaml", "--smoke", "--run-dir", tmp_path / "again",
                    "--quiet", "--expect", "test.accuracy>=1.01")
    assert missed.exit_code == 3
    assert (tmp_path / "again" / "metrics.json").exists()  # the run is kept for inspection


def test_the_seed_mnist_config_reads_a_local_keras_npz(tmp_path):
    """mnist_mlp.yaml unchanged, pointed at a generated file in Keras's own layout."""
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 10, 600), rng.integers(0, 10, 200)
    templates = rng.integers(0, 256, (10, 28, 28))

    def images(labels):
        noise = rng.integers(-40, 40, (len(labels), 28, 28))
        return np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)

    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images(y_train), y_train=y_train.astype(np.uint8),
             x_test=images(y_test), y_test=y_test.astype(np.uint8))
    run_dir = tmp_path / "run"
    result = invoke("fit", ROOT / "configs/mnist_mlp.yaml", "--set", f"data.path={npz}", "--set", "train.epochs=2",
                    "--run-dir", run_dir, "--quiet", "--expect", "test.accuracy>=0.9")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"] == {"train": 480, "val": 120, "test": 200}  # Keras's validation_split=0.2
    assert metrics["params"]["trainable"] == 784 * 128 + 128 + 128 * 10 + 10


def test_regression_with_standardize_beats_the_mean(tmp_path):
    result = invoke("fit", ROOT / "configs/diabetes_regression.yaml", "--run-dir", tmp_path / "r", "--quiet",
                    "--set", "train.epochs=40")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["task"] == "regression"
    assert metrics["final"]["test"]["mae"] < 55  # predicting the mean scores about 64


def test_csv_with_categories_and_string_labels_then_eval_on_a_new_file(tmp_path):
    rng = np.random.default_rng(1)

    def rows(n):
        lines = ["size,color,weight,kind"]
        for _ in range(n):
            color = rng.choice(["red", "green", "blue"])
            size = rng.normal(0, 1)
            kind = "big" if size > 0 else "small"
            lines.append(f"{size + 10:.3f},{color},{rng.normal(5, 1):.3f},{kind}")
        return "\n".join(lines) + "\n"

    (tmp_path / "train.csv").write_text(rows(400))
    (tmp_path / "new.csv").write_text(rows(100).replace("green", "purple"))  # an unseen category
    config = write_config(tmp_path, """
name: csv_kinds
data: {source: csv, path: train.csv, label: kind, validation_split: 0.2}
preprocess: [{standardize: {}}]
model: {type: mlp, hidden_units: [16]}
optimizer: {name: adam, learning_rate: 0.02}
metrics: [accuracy, precision, recall, auc]
train: {epochs: 15}
""")
    run_dir = tmp_path / "run"
    fitted = invoke("fit", config, "--run-dir", run_dir, "--quiet", "--expect", "test.accuracy>=0.9")
    assert fitted.exit_code == 0, fitted.output
    evaluated = invoke("eval", run_dir, "--data", tmp_path / "new.csv", "--quiet", "--expect", "accuracy>=0.85")
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads((run_dir / "eval-data-new.json").read_text())
    assert result["n_samples"] == 100 and result["data"]["path"] == str(tmp_path / "new.csv")
    assert result["classification"]["class_names"] == ["big", "small"]


def test_fit_says_why_float_class_ids_made_a_regression(tmp_path):
    rng = np.random.default_rng(2)
    lines = ["a,b,class"] + [f"{rng.normal():.3f},{rng.normal():.3f},{i % 3:.1f}" for i in range(120)]
    (tmp_path / "floats.csv").write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path, """
name: float_classes
data: {source: csv, path: floats.csv, label: class}
model: {type: mlp, hidden_units: [8]}
train: {epochs: 1}
""")
    result = invoke("fit", config, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    reason = ("label column 'class' is float with 3 distinct values (0.0, 1.0, 2.0), so the task is regression; "
              "set data.task: classification if they are classes")
    assert f"task: regression — {reason}" in " ".join(result.output.split())  # rich may wrap it
    assert f"Task: **regression** — {reason}" in (tmp_path / "run" / "report.md").read_text()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["task_reason"] == reason


@pytest.mark.parametrize(
    "change, fragment",
    [
        ("loss: categorical_crossentropy", "one-hot"),
        ("model: {type: sequential, layers: [{Dense: {units: 3, activation: softmax}}]}", "10 classes"),
        ("model: {type: sequential, layers: [{Dense: {unitz: 3}}]}", "model.layers.0.Dense"),
        ("optimizer: {name: sgd, momentun: 0.9}", "did you mean 'momentum'"),
        ("metrics: [mae, {f1: {average: median}}]", "metrics.1.f1.average"),
        ("{data: {source: diabetes}, metrics: [accuracy]}",
         "metrics.0: 'accuracy' needs class labels, but the task is regression: source 'diabetes'"),
    ],
)
def test_config_problems_found_at_build_time_exit_2_and_write_nothing(tmp_path, change, fragment):
    """Found only once the data is read or the model built, yet named like a validation error:
    the file and line of the key, then the key."""
    base = {
        "name": "bad", "data": {"source": "digits"}, "model": {"type": "mlp", "hidden_units": [8]},
        "train": {"epochs": 1},
    }
    config = write_config(tmp_path, yaml.safe_dump({**base, **yaml.safe_load(change)}))
    result = invoke("fit", config, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert f"error: {config}:" in result.output, "the error names the config file and line"
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("precision, policy", [("bf16", "mixed_bfloat16"), ("fp16", "mixed_float16")])
def test_mixed_precision_trains_saves_and_reloads(tmp_path, precision, policy):
    run_dir = tmp_path / precision
    result = invoke("fit", ROOT / "configs/digits_mlp.yaml", "--smoke", "--run-dir", run_dir, "--quiet",
                    "--set", f"train.mixed_precision={precision}")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["precision"] == policy
    assert np.isfinite(metrics["final"]["test"]["loss"])
    # --smoke reloaded the model and evaluated it: the float32 output survives the round trip.
    assert json.loads((run_dir / "eval-test.json").read_text())["metrics"]["loss"] == pytest.approx(
        metrics["final"]["test"]["loss"], rel=2e-2)  # bfloat16 keeps ~3 significant digits


def test_transfer_from_a_trained_run_starts_ahead_and_reports_its_layers(digits_run, tmp_path):
    """From the digits run: one epoch with the hidden layer frozen beats one epoch from scratch."""
    source, _ = digits_run
    common = ["--set", "train.epochs=3", "--set", "train.early_stopping=null", "--set", "optimizer.learning_rate=0.001",
              "--set", "train.jit_compile=false", "--quiet"]
    scratch = invoke("fit", ROOT / "configs/digits_mlp.yaml", "--run-dir", tmp_path / "scratch", *common)
    transfer = invoke("fit", ROOT / "configs/transfer_finetune.yaml", "--run-dir", tmp_path / "transfer", *common,
                      "--set", f"model.init_from={source}", "--set", "train.unfreeze_after_epochs=1",
                      "--set", "train.fine_tune_learning_rate=0.0001")
    assert scratch.exit_code == 0 and transfer.exit_code == 0, transfer.output

    def first_epoch_val_accuracy(run):
        return float((run / "history.csv").read_text().splitlines()[1].split(",")[5])

    assert first_epoch_val_accuracy(tmp_path / "transfer") > first_epoch_val_accuracy(tmp_path / "scratch") + 0.1
    metrics = json.loads((tmp_path / "transfer" / "metrics.json").read_text())
    assert metrics["transfer"]["frozen_at_start"] == ["hidden_0"]
    assert metrics["transfer"]["unfrozen_after_epochs"] == 1
    assert "hidden_0" in metrics["transfer"]["trainable"] and metrics["transfer"]["frozen"] == []
    assert "hidden_0" in metrics["transfer"]["transferred"]
    assert "frozen at start" in (tmp_path / "transfer" / "report.md").read_text()


def test_transfer_with_a_mismatched_layer_is_a_clear_error(digits_run, tmp_path):
    source, _ = digits_run
    result = invoke("fit", ROOT / "configs/transfer_finetune.yaml", "--run-dir", tmp_path / "t", "--quiet",
                    "--set", f"model.init_from={source}", "--set", "model.hidden_units=[64]")
    assert result.exit_code == 2
    assert "hidden_0" in result.output and "same name but other shapes" in result.output


def test_a_failure_before_the_first_checkpoint_leaves_no_run_directory(tmp_path, monkeypatch):
    """Nothing was trained, so nothing should make the next try need --overwrite."""
    from fmtrain.engine.trainer import Trainer

    def fails(self, *args, **kwargs):
        raise RuntimeError("the first compiled call failed")

    monkeypatch.setattr(Trainer, "fit", fails)
    run_dir = tmp_path / "run"
    result = invoke("fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(run_dir), "--quiet")
    assert result.exit_code == 1 and "the first compiled call failed" in result.output
    assert not run_dir.exists()
    monkeypatch.undo()
    again = invoke("fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(run_dir), "--quiet",
                   "--set", "train.epochs=1")
    assert again.exit_code == 0, again.output


def test_the_final_evaluation_does_not_keep_the_training_set_on_the_device(tmp_path, monkeypatch):
    """Copies are reused across epochs and phases; once training ends, fit lets the training set's go."""
    from fmtrain.engine.trainer import Trainer

    held, training_done = [], []
    fit, evaluate = Trainer.fit, Trainer.evaluate

    def fit_and_mark(self, *args, **kwargs):
        result = fit(self, *args, **kwargs)
        training_done.append(True)
        return result

    def evaluate_and_look(self, *args, **kwargs):
        if training_done:
            held.append(sorted(map(str, self._device_copies._copies)))
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", fit_and_mark)
    monkeypatch.setattr(Trainer, "evaluate", evaluate_and_look)
    result = invoke("fit", ROOT / "configs/digits_mlp.yaml", "--run-dir", tmp_path / "run", "--quiet",
                    "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    assert len(held) == 3  # train, val and test scored at the end
    assert all("train" not in keys for keys in held), held
