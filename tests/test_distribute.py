"""Training on several devices (``distribute:``): MirroredStrategy over 2 logical CPU devices trains
the same loss curve as one device for the same global batch and seed, reports its replicas, and its
checkpoints resume on one device and the other way round.

Logical CPU devices can be set only once per process, before TensorFlow initializes its devices, so
the mirrored runs are subprocesses (two); the one-device runs are in-process.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmtrain.cli import app

ROOT = Path(__file__).resolve().parents[1]
# Measured on digits: the two curves agree to history.csv's six significant digits (the summed
# replica gradients differ from the one-device gradient in the last float32 bits only).
RTOL = 1e-4

CONFIG = """\
name: dist
seed: 7
data: {source: digits, test_split: 0.2, validation_split: 0.2, batch_size: 64}
preprocess:
  - rescale: {scale: 0.0625}
model: {type: mlp, hidden_units: [32]}
optimizer: {name: sgd, learning_rate: 0.2}  # not Adam: it hides a wrong gradient scale
loss: sparse_categorical_crossentropy
metrics: [accuracy]
train: {epochs: 3, checkpoint: {keep_last: 3}}
"""
TWO_DEVICES = ["--set", "distribute.cpu_devices=2"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def fit_in_child(*args) -> None:
    """``fmtrain fit`` in a fresh process (its own logical devices), from this source tree."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "fmtrain", "fit", *map(str, args), "--device", "cpu", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def losses(run: Path, key: str = "loss") -> list[float]:
    with open(run / "history.csv", newline="") as rows:
        return [float(row[key]) for row in csv.DictReader(rows)]


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def back_to_epoch_2(run: Path, to: Path) -> Path:
    """A copy of ``run`` whose newest checkpoint is the end of epoch 2 (of 3)."""
    shutil.copytree(run, to)
    newest = sorted((to / "checkpoints").glob("step-*.npz"))[-1]
    newest.unlink()
    (to / "checkpoints" / "best.json").unlink(missing_ok=True)
    return to


@pytest.mark.tf
@pytest.mark.slow
def test_mirrored_matches_one_device_and_checkpoints_move_between_replica_counts(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    one, two = tmp_path / "one", tmp_path / "two"

    fit_in_child(config, "--run-dir", two, *TWO_DEVICES)
    assert invoke("fit", config, "--run-dir", one, "--device", "cpu", "--quiet").exit_code == 0

    # The same global batch and seed on 1 and 2 replicas: the same curve.
    assert metrics(two)["distribute"] == {"strategy": "mirrored", "replicas": 2, "workers": 1,
                                          "per_replica_batch": 32}
    assert metrics(one)["distribute"] == {"strategy": "one_device", "replicas": 1, "workers": 1,
                                          "per_replica_batch": 64}
    for key in ("loss", "accuracy", "val_loss"):
        assert losses(two, key) == pytest.approx(losses(one, key), rel=RTOL), key
    assert metrics(two)["final"]["test"]["loss"] == pytest.approx(metrics(one)["final"]["test"]["loss"], rel=RTOL)
    assert metrics(one)["global_step"] == metrics(two)["global_step"] == 3 * 18

    # A checkpoint written on 2 replicas resumes on 1 ...
    two_then_one = back_to_epoch_2(two, tmp_path / "two_then_one")
    resumed = invoke("fit", "--resume", two_then_one, "--set", "distribute.cpu_devices=null",
                     "--allow-config-change", "--device", "cpu", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert metrics(two_then_one)["resume"]["from_step"] == 36
    assert metrics(two_then_one)["distribute"]["replicas"] == 1
    assert losses(two_then_one) == pytest.approx(losses(one), rel=RTOL)

    # ... and one written on 1 replica resumes on 2.
    one_then_two = back_to_epoch_2(one, tmp_path / "one_then_two")
    fit_in_child("--resume", one_then_two, *TWO_DEVICES, "--allow-config-change")
    assert metrics(one_then_two)["resume"]["from_step"] == 36
    assert metrics(one_then_two)["distribute"]["replicas"] == 2
    assert losses(one_then_two) == pytest.approx(losses(one), rel=RTOL)
    assert metrics(one_then_two)["final"]["test"]["accuracy"] == pytest.approx(
        metrics(one)["final"]["test"]["accuracy"], abs=1e-6)


def test_a_global_batch_that_does_not_split_evenly_is_refused():
    from fmtrain.engine.device import Distribution
    from fmtrain.errors import ConfigError

    Distribution("mirrored", replicas=2).check_batch(64)
    with pytest.raises(ConfigError, match=r"^data\.batch_size: 63 is the global batch .* 2 replicas .* use 62 or 64"):
        Distribution("mirrored", replicas=2).check_batch(63)


def test_distribute_is_validated_and_left_out_of_the_resolved_config_while_default():
    from fmtrain.config.schema import Config

    base = {"data": {"source": "digits"}, "model": {"type": "mlp"}}
    assert "distribute" not in Config.model_validate(base).to_yaml_dict()  # old runs keep their config hash
    cfg = Config.model_validate({**base, "distribute": {"strategy": "mirrored", "cpu_devices": 2}})
    assert cfg.to_yaml_dict()["distribute"] == {"strategy": "mirrored", "cpu_devices": 2}
    for bad in ({"strategy": "ring"}, {"cpu_devices": 0}, {"workers": 2}):
        with pytest.raises(ValueError):
            Config.model_validate({**base, "distribute": bad})
