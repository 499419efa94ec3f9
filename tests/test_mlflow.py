"""``report.mlflow`` logs a finished run to a real MLflow store (SQLite in a temporary folder), read
back with MlflowClient: params, per-epoch metrics, artifacts and a model that predicts as the run's."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")
mlflow = pytest.importorskip("mlflow")

from fmtrain.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "logged.yaml"
    path.write_text(f"""\
extends: {ROOT / "configs/digits_mlp.yaml"}
name: logged
train: {{epochs: 3, early_stopping: null}}
report:
  mlflow: {{tracking_uri: "{uri}", experiment: fmtrain-tests, artifact_location: "{tmp_path / 'artifacts'}"}}
""")
    return path


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(_config(tmp_path, uri)), "--run-dir", str(run_dir)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("fmtrain-tests")
    runs = client.search_runs([experiment.experiment_id])
    return run_dir, client, runs, result


def test_the_store_holds_one_finished_run_with_the_flattened_config(logged):
    run_dir, _, runs, result = logged

    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert f"mlflow: run {run.info.run_id}" in result.output
    params = run.data.params
    assert params["train.epochs"] == "3" and params["model.type"] == "mlp"
    assert params["optimizer.learning_rate"] == "0.002" and params["model.hidden_units"] == "[128]"
    assert params["preprocess.0.rescale.scale"] == "0.0625"
    assert run.data.tags["fmtrain.run_dir"] == str(run_dir.resolve())


def test_metrics_per_epoch_equal_history_and_final_metrics_equal_metrics_json(logged):
    run_dir, client, runs, _ = logged
    run_id = runs[0].info.run_id
    with (run_dir / "history.csv").open() as f:
        history = list(csv.DictReader(f))

    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        logged_values = {m.step: m.value for m in client.get_metric_history(run_id, column)}
        assert logged_values == {int(row["epoch"]): float(row[column]) for row in history}, column
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    assert runs[0].data.metrics["final_test_accuracy"] == pytest.approx(final["test"]["accuracy"])
    assert runs[0].data.metrics["final_val_loss"] == pytest.approx(final["val"]["loss"])


def test_artifacts_hold_the_report_metrics_and_a_model_that_predicts_as_the_run(logged, tmp_path):
    import keras
    import mlflow.keras

    run_dir, client, runs, _ = logged
    run_id = runs[0].info.run_id
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.md", "report.html", "metrics.json", "config.yaml", "history.csv", "model",
            "tensorboard"} <= names
    assert json.loads(Path(client.download_artifacts(run_id, "metrics.json", str(tmp_path))).read_text()) == \
        json.loads((run_dir / "metrics.json").read_text())

    logged_model = mlflow.keras.load_model(client.download_artifacts(run_id, "model", str(tmp_path)))
    trained = keras.saving.load_model(run_dir / "model.keras")
    x = np.random.default_rng(0).uniform(0, 16, size=(5, 8, 8)).astype("float32")
    np.testing.assert_allclose(logged_model.predict(x, verbose=0), trained.predict(x, verbose=0), rtol=1e-6)


def test_without_mlflow_fit_exits_2_naming_the_extra_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    run_dir = tmp_path / "run"

    result = CliRunner().invoke(app, ["fit", str(_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")),
                                      "--run-dir", str(run_dir)])

    assert result.exit_code == 2
    assert "report.mlflow" in result.output and "pip install 'fmtrain[mlflow]'" in result.output
    assert "Traceback" not in result.output
    assert not run_dir.exists() and not (tmp_path / "m.db").exists()
