"""Checkpoints and resume: a run killed at any point continues exactly; interruptions are safe."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from fmtrain.cli import app  # noqa: E402
from fmtrain.engine.checkpoints import CheckpointManager, TrainingState, load_checkpoint  # noqa: E402
from fmtrain.errors import RunDirError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DETERMINISTIC = f"""extends: {ROOT / 'configs/digits_mlp.yaml'}
train:
  epochs: 4
  deterministic: true
  early_stopping: null
  checkpoint: {{every_steps: 10, keep_last: 50}}
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def final_numbers(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    return {split: values for split, values in metrics["final"].items() if values}


def history_without_timing(run: Path) -> list[dict]:
    import csv

    with open(run / "history.csv") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_checkpoint_files_are_atomic_and_damaged_ones_are_skipped(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    for step in (10, 20, 30):
        manager.save(TrainingState(epoch=0, step=step, global_step=step), {"model": [np.full(3, step, np.float32)]},
                     score=float(-step))
    newest = manager.checkpoints()[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # a crash mid-copy, or a full disk
    path, state, groups = manager.latest()
    assert state.global_step == 20 and groups["model"][0].tolist() == [20, 20, 20]
    with pytest.raises(RunDirError, match="damaged checkpoint"):
        load_checkpoint(newest)
    assert not list(tmp_path.glob("*.tmp"))


def test_keeps_the_last_k_and_the_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=True)
    for step, score in ((1, 0.1), (2, 0.5), (3, 0.4), (4, 0.3)):
        manager.save(TrainingState(epoch=0, step=step, global_step=step), {"model": []}, score=score)
    assert [p.name for p in manager.checkpoints()] == ["step-000000001.npz", "step-000000003.npz", "step-000000004.npz"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    (tmp / "c.yaml").write_text(DETERMINISTIC)
    result = invoke("fit", tmp / "c.yaml", "--run-dir", tmp / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return tmp / "run"


def test_deterministic_runs_are_identical(uninterrupted, tmp_path):
    (tmp_path / "c.yaml").write_text(DETERMINISTIC)
    assert invoke("fit", tmp_path / "c.yaml", "--run-dir", tmp_path / "again", "--quiet").exit_code == 0
    assert final_numbers(tmp_path / "again") == final_numbers(uninterrupted)
    first = json.loads((uninterrupted / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first["loss_fingerprint"] == second["loss_fingerprint"] and first["resumed_from_step"] is None


@pytest.mark.slow
def test_killed_at_several_points_and_resumed_equals_uninterrupted(uninterrupted, tmp_path):
    """SIGKILL a real process after its 1st, 3rd and 6th of 8 checkpoints; resume each; compare."""
    (tmp_path / "c.yaml").write_text(DETERMINISTIC)
    for after_checkpoints in (1, 3, 6):
        run = tmp_path / f"killed-{after_checkpoints}"
        process = subprocess.Popen([sys.executable, "-m", "fmtrain", "fit", str(tmp_path / "c.yaml"), "--run-dir",
                                    str(run), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if len(list((run / "checkpoints").glob("step-*.npz"))) >= after_checkpoints:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (run / "metrics.json").exists(), "killed too late: the run had already finished"
        resumed = invoke("fit", "--resume", run, "--quiet")
        assert resumed.exit_code == 0, resumed.output
        assert final_numbers(run) == final_numbers(uninterrupted)
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["resumed_from_step"] > 0
        assert history_without_timing(run) == history_without_timing(uninterrupted)


def test_resume_with_a_changed_config_is_refused_unless_allowed(uninterrupted, tmp_path):
    run = tmp_path / "copy"
    import shutil

    shutil.copytree(uninterrupted, run)
    refused = invoke("fit", "--resume", run, "--set", "optimizer.learning_rate=0.5", "--quiet")
    assert refused.exit_code == 2 and "optimizer.learning_rate" in refused.output
    allowed = invoke("fit", "--resume", run, "--set", "train.epochs=5", "--allow-config-change", "--quiet")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 5
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 5


def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(DETERMINISTIC.replace("epochs: 4", "epochs: 400"))
    process = subprocess.Popen([sys.executable, "-m", "fmtrain", "fit", str(config), "--run-dir", str(tmp_path / "run"),
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "run" / "checkpoints").glob("step-*.npz")):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert (tmp_path / "run" / "history.csv").exists() and (tmp_path / "run" / "report.md").exists()
    state = CheckpointManager(tmp_path / "run" / "checkpoints").latest()[1]
    assert state.global_step > 0


def test_a_nan_loss_stops_with_exit_1_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(DETERMINISTIC + "optimizer: {name: sgd, learning_rate: 1.0e+12}\n")
    result = invoke("fit", config, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 1
    assert "loss became" in result.output and "learning_rate" in result.output
    for path in (tmp_path / "run" / "checkpoints").glob("step-*.npz"):
        _, groups = load_checkpoint(path)
        assert all(np.isfinite(v).all() for v in groups["model"])


def test_a_lambda_model_is_refused_without_unsafe(tmp_path):
    """Loading someone's run must not run their code: Lambda layers need --unsafe."""
    import keras

    (tmp_path / "c.yaml").write_text(DETERMINISTIC.replace("epochs: 4", "epochs: 1"))
    run = tmp_path / "run"
    assert invoke("fit", tmp_path / "c.yaml", "--run-dir", run, "--quiet").exit_code == 0
    original = keras.saving.load_model(run / "model.keras", compile=False)
    inputs = keras.Input(original.input_shape[1:])
    outputs = keras.layers.Lambda(lambda t: t * 1.0)(original(inputs))
    keras.Model(inputs, outputs).save(run / "model.keras")
    refused = invoke("eval", run, "--quiet")
    assert refused.exit_code == 2 and "--unsafe" in refused.output
    assert invoke("eval", run, "--quiet", "--unsafe").exit_code == 0
