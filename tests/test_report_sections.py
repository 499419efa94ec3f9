"""The report's data, model and environment sections: data_stats.json and model_summary.json,
from hand-made splits and run directories (no TensorFlow), and from one real fit (tf)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmtrain.data import DataInfo, EncoderState, Split, Splits
from fmtrain.data_stats import DataStats, data_stats, row_hashes
from fmtrain.errors import RunDirError
from fmtrain.report import write_report
from fmtrain.report.details import LayerRow, ModelSummary, read_model_summary

ROOT = Path(__file__).resolve().parents[1]


def _splits(x_train, y_train, x_test, y_test, class_names=("cat", "dog", "bird")) -> Splits:
    info = DataInfo(source="test", task="classification", num_classes=len(class_names),
                    class_names=list(class_names), feature_names=None, input_shape=(2,), encoders=EncoderState())
    return Splits(train=Split(x_train, np.asarray(y_train)), val=None, test=Split(x_test, np.asarray(y_test)),
                  info=info)


def test_class_balance_leaked_rows_and_a_missing_class():
    x_train = np.arange(12, dtype=np.float32).reshape(6, 2)
    x_test = np.array([[0, 1], [4, 5], [100, 101], [-0.5, 3]], dtype=np.float32)  # two rows copied from train
    stats = data_stats(_splits(x_train, [0, 0, 0, 1, 2, 2], x_test, [0, 1, 0, 1]))
    assert stats.splits["train"].class_counts == [3, 1, 2]
    assert stats.splits["test"].class_counts == [2, 2, 0]
    assert stats.in_train == {"test": 2}
    assert stats.missing_classes() == ["the test split has no rows of 1 class: 'bird'"]
    assert DataStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats


def test_row_hashes_see_every_named_input_and_text():
    x = {"ids": np.array([1, 1, 2]), "text": np.array(["a b", "a b", "a b"], dtype=object)}
    hashes = row_hashes(x)
    assert hashes[0] == hashes[1] != hashes[2]  # equal only where every input is equal
    assert row_hashes(np.array(["x", "y", "x"], dtype=object))[0] == row_hashes(np.array(["x"], dtype=object))[0]
    assert row_hashes(np.array([[1.0, 2.0]]))[0] != row_hashes(np.array([[2.0, 1.0]]))[0]


def test_regression_has_no_class_counts():
    splits = _splits(np.zeros((3, 2)), [0.5, 1.5, 2.5], np.ones((2, 2)), [0.1, 0.2])
    info = DataInfo(**{**splits.info.__dict__, "task": "regression", "num_classes": None, "class_names": None})
    stats = data_stats(Splits(splits.train, None, splits.test, info))
    assert stats.splits["train"].class_counts is None and stats.missing_classes() == []
    assert stats.in_train == {"test": 0}


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "schema_version": 1, "name": "pets", "task": "classification", "epochs_run": 2,
        "final": {"test": {"loss": 0.5, "accuracy": 0.75}}, "data": {"train": 6, "test": 4}}))
    (run / "history.csv").write_text("epoch,loss,accuracy,lr,seconds\n1,1.0,0.5,0.01,0.1\n2,0.5,0.75,0.001,0.1\n")
    (run / "environment.json").write_text(json.dumps({
        "schema_version": 1, "tensorflow": "2.21.0", "devices": ["CPU:0"],
        "argv": ["fmtrain", "fit", "my config.yaml", "--set", "train.epochs=2"]}))
    x_train = np.arange(12, dtype=np.float32).reshape(6, 2)
    x_test = np.array([[0, 1], [4, 5], [100, 101], [-0.5, 3]], dtype=np.float32)
    stats = data_stats(_splits(x_train, [0, 0, 0, 1, 2, 2], x_test, [0, 1, 0, 1]))
    (run / "data_stats.json").write_text(json.dumps({"schema_version": 1, **stats.to_dict()}))
    summary = ModelSummary(name="pets", layers=[
        LayerRow("inputs", "InputLayer", "(None, 2)", 0, True),
        LayerRow("hidden_0", "Dense", "(None, 4)", 12, False),
        LayerRow("hidden_0_bn", "BatchNormalization", "(None, 4)", 16, True),
        LayerRow("output", "Dense", "(None, 3)", 15, True)], trainable_params=23, frozen_params=12, state_params=8)
    (run / "model_summary.json").write_text(json.dumps({"schema_version": 1, **summary.to_dict()}))
    return run


def test_report_shows_class_balance_leaks_missing_classes_model_lr_and_environment(tmp_path):
    run = _run_dir(tmp_path)
    write_report(run)
    md, html = (run / "report.md").read_text(), (run / "report.html").read_text()
    leak = "2 of 4 test rows (50.0%) have exactly the inputs of a training row"
    missing = "the test split has no rows of 1 class: &#39;bird&#39;"
    top = html.split("<h2>")[0]  # the warnings come before any section
    assert leak in top and missing in top
    assert f"> **Warning:** {leak}" in md and "> **Warning:** the test split has no rows of 1 class: 'bird'" in md
    assert "| bird | 2 (33.3%) | 0 (0.0%) |" in md  # class balance per split
    assert "| test | 4 | 2 (50.0%) |" in md  # rows and inputs also in train
    assert "43 parameters: 23 trainable, 12 frozen, 8 statistics" in md
    assert "| hidden_0 | Dense | (None, 4) | 12 | frozen |" in md
    assert "<td>hidden_0</td><td>Dense</td><td>(None, 4)</td><td>12</td><td>frozen</td>" in html
    assert "plots/history_lr.png" in html and (run / "plots" / "history_lr.png").is_file()
    assert "| argv | fmtrain fit 'my config.yaml' --set train.epochs=2 |" in md  # a command one can paste
    assert "schema_version" not in md


def test_runs_without_the_new_files_keep_their_data_table(tmp_path):
    run = _run_dir(tmp_path)
    (run / "data_stats.json").unlink()
    (run / "model_summary.json").unlink()
    write_report(run)
    md = (run / "report.md").read_text()
    assert "| train | 6 |" in md and "Class balance" not in md and "## Model" not in md and "Warning" not in md


def test_a_damaged_model_summary_names_the_file(tmp_path):
    run = _run_dir(tmp_path)
    (run / "model_summary.json").write_text(json.dumps({"schema_version": 1, "name": "x"}))
    with pytest.raises(RunDirError, match=r"model_summary.json: not what fmtrain writes there"):
        read_model_summary(run)
    assert CliRunner().invoke(__import__("fmtrain.cli").cli.app, ["report", str(run)]).exit_code == 2


@pytest.mark.tf
def test_fit_records_data_stats_and_the_model_with_frozen_and_statistics_params(tmp_path):
    pytest.importorskip("tensorflow")
    from fmtrain.cli import app

    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(run), "--quiet",
        "--set", "train.epochs=1", "--set", "model.hidden_units=[16]", "--set", "model.batch_norm=true",
        "--set", "model.freeze=[hidden_0]"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    stats = DataStats.from_dict(json.loads((run / "data_stats.json").read_text()))
    metrics = json.loads((run / "metrics.json").read_text())
    assert {name: s.rows for name, s in stats.splits.items()} == metrics["data"]
    assert sum(stats.splits["test"].class_counts) == metrics["data"]["test"] and len(stats.class_names) == 10
    summary = read_model_summary(run)
    layers = {row.name: row for row in summary.layers}
    assert layers["hidden_0"].params == 64 * 16 + 16 and not layers["hidden_0"].trainable
    assert summary.frozen_params == 64 * 16 + 16
    assert summary.state_params == 2 * 16  # the batch-norm moving mean and variance
    assert summary.trainable_params == metrics["params"]["trainable"]
    md = (run / "report.md").read_text()
    assert "## Model" in md and "| hidden_0 | Dense | (None, 16) | 1,040 | frozen |" in md
    assert "### Class balance" in md and "(plots/history_lr.png)" in md
