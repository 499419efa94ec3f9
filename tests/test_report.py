"""Reports built from a fake run directory: no TensorFlow, a few seconds in all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from fmtrain.errors import DataError, RunDirError
from fmtrain.report import classification_summary, print_eval, print_fit_summary, write_report
from fmtrain.runs import RunMetrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["cat", "dog", "bird"]
# 3 classes, 6 samples: class 0 half right, class 1 all right, class 2 half right.
Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0]


def _metrics(name="digits_mlp", task="classification", val=True):
    return {
        "schema_version": 1, "name": name, "task": task,
        "final": {
            "train": {"loss": 0.05, "accuracy": 0.99},
            "val": {"loss": 0.1, "accuracy": 0.97} if val else None,
            "test": {"loss": 0.09, "accuracy": 0.9722},
        },
        "epochs_run": 3, "best_epoch": 2, "stopped_early": False, "resumed_from_step": None,
        "timing": {"fit_seconds": 3.2, "total_seconds": 6.0},
        "throughput": {"train_samples_per_second": 41000.0},
        "compile": {"jit_compile": True, "steps_per_execution": 64,
                    "traces": {"train": 1, "eval": 1}},
        "data": {"train": 1150, "val": 287, "test": 360},
        "params": {"trainable": 9000, "total": 9000},
        "some_future_key": {"ignored": True},
    }


def _history(metric="accuracy", val=True):
    val_columns = ["val_loss", f"val_{metric}"] if val else []
    rows = [",".join(["epoch", "loss", metric, *val_columns, "lr", "seconds"])]
    for epoch in range(1, 4):
        val_values = [1.2 / epoch, 0.4 + epoch / 10] if val else []
        values = [epoch, 1.0 / epoch, 0.5 + epoch / 10, *val_values, 0.001, 1.1]
        rows.append(",".join(str(v) for v in values))
    return "\n".join(rows) + "\n"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(_metrics()))
    (run / "history.csv").write_text(_history())
    (run / "config.yaml").write_text("name: digits_mlp\nseed: 42\ntrain: {epochs: 3}\n")
    (run / "environment.json").write_text(json.dumps(
        {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "fmtrain": "0.1.0",
         "devices": ["CPU:0"], "platform": "Linux"}))
    summary = classification_summary(Y_TRUE, Y_PRED, CLASSES)
    (run / "eval-test.json").write_text(json.dumps(
        {"schema_version": 1, "split": "test", "n_samples": 6,
         "metrics": {"loss": 0.09, "accuracy": 0.6667}, "classification": summary}))
    return run


def _referenced_images(run: Path) -> set[str]:
    md = (run / "report.md").read_text()
    html = (run / "report.html").read_text()
    md_refs = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    html_refs = set(re.findall(r'<img[^>]*src="([^"]+)"', html))
    assert md_refs == html_refs
    return md_refs


# --- classification_summary -------------------------------------------------------------

def test_summary_perfect_predictions_are_all_ones():
    s = classification_summary([0, 1, 2, 2], [0, 1, 2, 2], CLASSES)
    assert s["accuracy"] == 1.0
    assert all(c["precision"] == c["recall"] == c["f1"] == 1.0 for c in s["per_class"])
    assert [c["support"] for c in s["per_class"]] == [1, 1, 2]
    assert s["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 2]]
    assert s["macro"] == s["weighted"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_summary_known_confusion_is_exact():
    s = classification_summary(Y_TRUE, Y_PRED, CLASSES)
    by_class = {c["class"]: c for c in s["per_class"]}
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert by_class["cat"]["precision"] == pytest.approx(1 / 2)  # predicted cat: 0 ok, 5 wrong
    assert by_class["cat"]["recall"] == pytest.approx(1 / 2)
    assert by_class["dog"]["precision"] == pytest.approx(2 / 3)
    assert by_class["dog"]["recall"] == 1.0
    assert by_class["bird"]["precision"] == 1.0
    assert by_class["bird"]["recall"] == pytest.approx(1 / 2)
    assert by_class["dog"]["f1"] == pytest.approx(0.8)
    assert s["macro"]["recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert s["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]  # rows true, cols predicted
    json.dumps(s)  # plain Python types only


def test_summary_class_never_seen_scores_zero_without_crashing():
    s = classification_summary([0, 0, 1], [0, 0, 1], ["a", "b", "never"])
    never = s["per_class"][2]
    assert (never["precision"], never["recall"], never["support"]) == (0.0, 0.0, 0)
    assert s["confusion_matrix"][2] == [0, 0, 0]


def test_summary_rejects_label_outside_class_names():
    with pytest.raises(DataError, match="label 3 is outside the 3 class names"):
        classification_summary([0, 1, 3], [0, 1, 2], CLASSES)
    with pytest.raises(ValueError, match="same length"):
        classification_summary([0, 1], [0, 1, 2], CLASSES)


# --- write_report -----------------------------------------------------------------------

def test_report_files_mention_results_and_reference_valid_pngs(run_dir: Path):
    md_path = write_report(run_dir)
    assert md_path == run_dir / "report.md"
    md = md_path.read_text()
    html = (run_dir / "report.html").read_text()
    for text in (md, html):
        assert "digits_mlp" in text
        assert "0.9722" in text  # test accuracy from metrics.json
        assert "41,000" in text  # samples/s
        assert "2.21.0" in text  # tensorflow version from environment.json
        assert "seed: 42" in text  # resolved config
        for name in CLASSES:
            assert name in text
    refs = _referenced_images(run_dir)
    assert refs == {"plots/history_loss.png", "plots/history_accuracy.png", "plots/history_lr.png",
                    "plots/confusion_test.png"}
    for ref in refs:
        assert (run_dir / ref).read_bytes().startswith(PNG_SIGNATURE)
    assert "<style>" in html and "http" not in html.split("<body>")[1]  # self-contained


def test_report_is_idempotent(run_dir: Path):
    outputs = ["report.md", "report.html", "plots/history_loss.png", "plots/confusion_test.png"]
    write_report(run_dir)
    first = [(run_dir / name).read_bytes() for name in outputs]
    write_report(run_dir)
    assert [(run_dir / name).read_bytes() for name in outputs] == first
    assert not list(run_dir.rglob("*.tmp"))


def test_html_escapes_run_name(run_dir: Path):
    (run_dir / "metrics.json").write_text(json.dumps(_metrics(name="<script>alert(1)</script>")))
    write_report(run_dir)
    html = (run_dir / "report.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in (run_dir / "report.md").read_text()


def test_missing_metrics_json_names_the_path(run_dir: Path):
    (run_dir / "metrics.json").unlink()
    with pytest.raises(RunDirError, match=re.escape(str(run_dir / "metrics.json"))):
        write_report(run_dir)


def test_corrupt_metrics_json_names_the_line(run_dir: Path):
    (run_dir / "metrics.json").write_text('{"name": "x",\n  oops}')
    with pytest.raises(RunDirError, match="metrics.json: invalid JSON at line 2"):
        write_report(run_dir)


def test_history_with_a_bad_cell_names_file_and_line(run_dir: Path):
    (run_dir / "history.csv").write_text("epoch,loss,lr,seconds\n1,0.5,1e-3,1.0\n2,oops,1e-3,1.0\n")
    with pytest.raises(RunDirError, match=r"history.csv, line 3: column 'loss' holds 'oops'"):
        write_report(run_dir)


def test_regression_run_without_optional_files_still_reports(tmp_path: Path):
    metrics = _metrics(name="house_prices", task="regression", val=False)
    metrics["final"] = {"train": {"loss": 21.5, "mae": 3.25}, "val": None,
                        "test": {"loss": 24.75, "mae": 3.5}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "history.csv").write_text(_history(metric="mae", val=False))
    (tmp_path / "eval-test.json").write_text(json.dumps(
        {"schema_version": 1, "split": "test", "n_samples": 100,
         "metrics": {"loss": 24.75, "mae": 3.5}, "classification": None}))
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "regression" in md and "3.5" in md
    assert "Per class" not in md and "Environment" not in md and "Resolved config" not in md
    assert _referenced_images(tmp_path) == {"plots/history_loss.png", "plots/history_mae.png",
                                            "plots/history_lr.png"}
    assert not (tmp_path / "plots" / "confusion_test.png").exists()


def test_report_without_history_or_eval(tmp_path: Path):
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    write_report(tmp_path)
    assert _referenced_images(tmp_path) == set()
    assert "0.9722" in (tmp_path / "report.html").read_text()


# --- console ----------------------------------------------------------------------------

def _eval_result(names, y_true, y_pred):
    return {"split": "test", "n_samples": len(y_true), "metrics": {"loss": 0.1234, "accuracy": 0.5},
            "classification": classification_summary(y_true, y_pred, names)}


def test_print_eval_shows_per_class_rows_and_matrix():
    console = Console(record=True, width=120)
    print_eval(console, _eval_result(["cat", "dog", "[bird]"], Y_TRUE, Y_PRED))
    text = console.export_text()
    assert "0.1234" in text
    assert re.search(r"cat\s+│?\s*0\.5\s+│?\s*0\.5\s+│?\s*0\.5\s+│?\s*2", text)
    assert re.search(r"dog\s+│?\s*0\.6667\s+│?\s*1\s+│?\s*0\.8\s+│?\s*2", text)
    assert "[bird]" in text  # class names are not read as rich markup
    assert re.search(r"cat\s+1\s+1\s+0", text)  # confusion row for true class "cat"


def test_print_eval_compact_matrix_for_many_classes_fits_without_truncation():
    names = [f"class_{i:02d}" for i in range(15)]
    y = list(range(15)) * 2
    console = Console(record=True, width=120)
    print_eval(console, _eval_result(names, y, y[1:] + y[:1]))
    text = console.export_text()
    assert "Confusion matrix" in text and "…" not in text
    assert all(re.search(rf"\d+ {name}\s+\d", text) for name in names)  # matrix rows
    assert max(len(line) for line in text.splitlines()) <= 120


def test_print_eval_long_class_names_fall_back_to_compact_matrix():
    names = [f"a rather long class name number {i}" for i in range(5)]
    console = Console(record=True, width=120)
    print_eval(console, _eval_result(names, [0, 1, 2, 3, 4], [0, 1, 2, 3, 0]))
    text = console.export_text()
    assert "Confusion matrix" in text and "…" not in text
    assert re.search(r"4 a rather long class name number 4\s+1\s+0\s+0\s+0\s+0", text)


def test_print_eval_too_many_classes_lists_top_confusions():
    names = [f"c{i}" for i in range(40)]
    y_true = list(range(40)) + [5, 5, 5]
    y_pred = list(range(40)) + [7, 7, 9]
    console = Console(record=True, width=120)
    print_eval(console, _eval_result(names, y_true, y_pred))
    text = console.export_text()
    assert "Most frequent confusions" in text
    rows = [line for line in text.splitlines() if re.search(r"c5\s+│\s+c\d+\s+│", line)]
    assert [r.split()[3] for r in rows] == ["c7", "c9"]  # largest confusion first


def test_print_eval_regression_has_no_class_tables():
    console = Console(record=True, width=120)
    print_eval(console, {"split": "val", "n_samples": 10, "metrics": {"mae": 3.5},
                         "classification": None})
    text = console.export_text()
    assert "mae" in text and "3.5" in text and "Per class" not in text


def test_print_fit_summary_shows_metrics_speed_and_paths(run_dir: Path):
    (run_dir / "report.html").write_text("<html></html>")
    console = Console(record=True, width=200)
    print_fit_summary(console, RunMetrics.model_validate(_metrics()), run_dir)
    text = console.export_text()
    assert "0.9722" in text and "0.99" in text
    assert "3.2 s" in text and "41,000 samples/s" in text
    assert str(run_dir) in text and str(run_dir / "report.html") in text


def test_import_is_cheap():
    code = ("import sys, fmtrain.report; heavy = {'matplotlib', 'sklearn', 'jinja2', 'rich', "
            "'tensorflow', 'keras'} & set(sys.modules); print(sorted(heavy))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_an_interrupted_run_report_is_named_by_its_config_and_says_how_to_continue(tmp_path):
    """After Ctrl-C the report carries the run's name and task and the --resume command."""
    run = tmp_path / "20261202-010203"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(
        {"schema_version": 1, "name": run.name, "interrupted": {"epoch": 2, "step": 17}, "final": {}}))
    (run / "history.csv").write_text(_history())
    (run / "config.yaml").write_text("name: digits_mlp\nseed: 42\n")
    (run / "data_info.json").write_text(json.dumps({"schema_version": 1, "task": "classification"}))
    write_report(run)
    markdown = (run / "report.md").read_text()
    html = (run / "report.html").read_text()
    for text in (markdown, html):
        assert "digits_mlp" in text and run.name not in text.split("Resolved config")[0].split("resume")[0]
        assert "classification" in text and "unknown" not in text
        assert "Interrupted at epoch 2, step 17" in text and f"fmtrain fit --resume {run}" in text
    assert markdown.startswith("# digits_mlp")


def test_task_reason_warnings_and_precise_bn_are_shown_in_summary_and_report(run_dir: Path):
    reason = "label column 'class' is float with 3 distinct values (0.0, 1.0, 2.0), so the task is regression"
    warning = "train accuracy 0.3333 in inference mode (what the saved model does) vs accuracy 1 in training mode"
    payload = {**_metrics(), "task_reason": reason, "warnings": [warning],
               "precise_bn": {"layers": 4, "batches": 2, "batch_size": 32, "samples": 64, "seconds": 0.38}}
    (run_dir / "metrics.json").write_text(json.dumps(payload))
    write_report(run_dir)
    markdown, html = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    assert f"Task: **classification** — {reason}" in markdown
    assert f"> **Warning:** {warning}" in markdown
    assert "Task: classification — label column &#39;class&#39; is float" in html
    assert '<p class="warning"><strong>Warning:</strong> train accuracy 0.3333' in html
    for text in (markdown, html):
        assert "statistics of 4 layers recomputed on 64 training rows (2 batches of 32, 0.38 s)" in text

    console = Console(record=True, width=400)
    print_fit_summary(console, RunMetrics.model_validate(payload), run_dir)
    text = console.export_text()
    assert f"task: classification — {reason}" in text
    assert f"warning: {warning}" in text
    assert text.index("task: classification") > text.index("0.9722")  # under the final table
    assert "statistics of 4 layers recomputed" in text


def test_runs_without_the_new_keys_report_as_before(run_dir: Path):
    write_report(run_dir)
    markdown = (run_dir / "report.md").read_text()
    assert "Task: **classification**\n" in markdown and "Warning" not in markdown and "batch norm" not in markdown
    assert RunMetrics.model_validate(_metrics()).to_dict()["warnings"] == []
    assert "precise_bn" not in RunMetrics.model_validate(_metrics()).to_dict()
