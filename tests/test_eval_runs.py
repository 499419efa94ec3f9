"""`fmtrain eval` where users point it: a folder of runs, an interrupted run, their own files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from shape_images import shape_images  # noqa: E402

from fmtrain.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_folder_of_runs_evaluates_the_newest_finished_one_and_says_so(image_run, tmp_path):
    runs = tmp_path / "shapes"
    shutil.copytree(image_run, runs / "20260101-000000")
    shutil.copytree(image_run, runs / "20260301-000000")
    unfinished = runs / "20260401-000000"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((image_run / "config.yaml").read_text())
    result = invoke("eval", runs, "--quiet")
    assert result.exit_code == 0, result.output
    assert "using the newest" in result.output and "20260301-000000" in result.output
    assert (runs / "20260301-000000" / "eval-test.json").exists()
    assert not (runs / "20260101-000000" / "eval-test.json").exists()


def test_an_interrupted_run_suggests_resume(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    (run / "model.keras").unlink()
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / "step-000000003.npz").write_bytes(b"")
    result = invoke("eval", run)
    assert result.exit_code == 2
    assert "interrupted" in result.output and f"fmtrain fit --resume {run}" in result.output


def test_images_of_another_size_name_the_trained_size_and_the_fix(image_run, tmp_path):
    shape_images(tmp_path / "big", (12, 12))
    result = invoke("eval", image_run, "--data", tmp_path / "big")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "12×12×3" in errors[0] and "8×8×3" in errors[0]
    assert "--set data.image_size=[8,8]" in errors[0]
    assert not list(image_run.glob("eval-data*"))
    resized = invoke("eval", image_run, "--data", tmp_path / "big", "--set", "data.image_size=[8,8]", "--quiet")
    assert resized.exit_code == 0, resized.output


def test_each_data_file_gets_its_own_result_with_its_path_and_hash(image_run, tmp_path):
    import hashlib

    first = shape_images(tmp_path / "first", (8, 8), per_class=3)
    second = shape_images(tmp_path / "second", (8, 8), per_class=2)
    for folder in (first, second):
        assert invoke("eval", image_run, "--data", folder, "--quiet").exit_code == 0
    results = {p.name: json.loads(p.read_text()) for p in image_run.glob("eval-data-*.json")}
    assert {"eval-data-first.json", "eval-data-second.json"} <= set(results), "one file each, none overwritten"
    assert results["eval-data-first.json"]["data"]["path"] == str(first)
    assert results["eval-data-first.json"]["n_samples"] == 6 and results["eval-data-second.json"]["n_samples"] == 4
    digest = hashlib.sha256()
    for file in sorted(p for p in second.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(second)).encode() + b"\0" + file.read_bytes())
    assert results["eval-data-second.json"]["data"]["sha256"] == digest.hexdigest()


def test_the_per_class_summary_of_a_logit_model_agrees_with_its_accuracy(tmp_path):
    """One output unit with from_logits: a logit is positive above 0, not 0.5, in the summary too."""
    config = tmp_path / "c.yaml"
    config.write_text("name: logits\ndata: {source: breast_cancer, test_split: 0.3}\n"
                      "preprocess: [{standardize: {}}]\nmodel: {type: mlp, hidden_units: [8]}\n"
                      "loss: {binary_crossentropy: {from_logits: true}}\nmetrics: [accuracy]\ntrain: {epochs: 3}\n")
    run = tmp_path / "run"
    assert invoke("fit", config, "--run-dir", run, "--quiet").exit_code == 0
    assert invoke("eval", run, "--quiet").exit_code == 0
    result = json.loads((run / "eval-test.json").read_text())
    assert result["classification"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)


def test_expectations_on_a_data_file_name_the_split_data(image_run, tmp_path):
    """The failure message says data.accuracy; --expect takes that name (and data_accuracy) too."""
    folder = shape_images(tmp_path / "more", (8, 8), per_class=2)
    passed = invoke("eval", image_run, "--data", folder, "--quiet", "--expect", "data.accuracy>=0.0",
                    "--expect", "data_loss<1000")
    assert passed.exit_code == 0, passed.output
    assert "data.accuracy" in passed.output and "data.loss" in passed.output
    missed = invoke("eval", image_run, "--data", folder, "--quiet", "--expect", "data.accuracy>1.0")
    assert missed.exit_code == 3 and "data.accuracy" in missed.output
    without_data = invoke("eval", image_run, "--quiet", "--expect", "data.accuracy>=0.0")
    assert without_data.exit_code == 2 and "unknown split 'data'" in without_data.output
