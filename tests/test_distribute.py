"""Training on several devices (``distribute:``): MirroredStrategy over 2 logical CPU devices trains
the same loss curve as one device for the same global batch and seed, reports its replicas, and its
checkpoints resume on one device and the other way round.

Logical CPU devices can be set only once per process, before TensorFlow initializes its devices, so
the mirrored run and the `fmtrain launch` of two workers are subprocesses; the one-device runs are in-process.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
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


def fmtrain_in_child(*args, **env) -> str:
    """``fmtrain ARGS`` in a fresh process (its own logical devices), from this source tree; its output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env}
    done = subprocess.run([sys.executable, "-m", "fmtrain", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout + done.stderr


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

    fmtrain_in_child("fit", config, "--run-dir", two, *TWO_DEVICES, "--device", "cpu", "--quiet")
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

    # ... and one written on 1 replica resumes on 2 workers of `fmtrain launch` (multi_worker, TF_CONFIG on
    # localhost): only the chief writes the run directory; the other worker's scratch folder is gone.
    one_then_two = back_to_epoch_2(one, tmp_path / "one_then_two")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    launched = fmtrain_in_child("launch", "--workers", "2", "--resume", one_then_two, "--allow-config-change",
                                "--device", "cpu", "--quiet", TMPDIR=str(scratch))
    assert "[worker 0] " in launched and "[worker 1] " in launched
    assert metrics(one_then_two)["resume"]["from_step"] == 36
    assert metrics(one_then_two)["distribute"] == {"strategy": "multi_worker", "replicas": 2, "workers": 2,
                                                   "per_replica_batch": 32}
    assert losses(one_then_two) == pytest.approx(losses(one), rel=RTOL)
    assert metrics(one_then_two)["final"]["test"]["accuracy"] == pytest.approx(
        metrics(one)["final"]["test"]["accuracy"], abs=0.02)
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "one", "one_then_two", "scratch", "two",
                                                          "two_then_one"]


def test_launch_ends_the_other_workers_when_one_dies_and_says_which(monkeypatch):
    from fmtrain.commands import launch

    monkeypatch.setattr(launch, "STOP_AFTER_S", 1)
    started = time.monotonic()
    workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
               subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])]
    assert launch._wait(workers) == (1, 3)
    assert time.monotonic() - started < 15 and workers[0].returncode is not None


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
    assert Config.model_validate({**base, "distribute": {"strategy": "multi_worker"}}).distribute.strategy \
        == "multi_worker"
    for bad in ({"strategy": "ring"}, {"cpu_devices": 0}, {"workers": 2}):
        with pytest.raises(ValueError):
            Config.model_validate({**base, "distribute": bad})


def test_tf_config_gives_the_role_as_cluster_launchers_set_it(monkeypatch):
    from fmtrain.engine.device import worker_role
    from fmtrain.errors import ConfigError

    def role(spec):
        monkeypatch.setenv("TF_CONFIG", json.dumps(spec))
        return worker_role()

    workers = {"worker": ["a:1", "b:2"]}
    assert role({"cluster": workers, "task": {"type": "worker", "index": 0}}).chief
    assert not role({"cluster": workers, "task": {"type": "worker", "index": 1}}).chief
    with_chief = {"chief": ["c:0"], **workers}  # Kubeflow's TFJob with a Chief replica
    assert role({"cluster": with_chief, "task": {"type": "chief", "index": 0}}).describe() == "chief 0 of 3 (chief)"
    assert not role({"cluster": with_chief, "task": {"type": "worker", "index": 0}}).chief
    with pytest.raises(ConfigError, match="^TF_CONFIG: expected"):
        role({"cluster": workers, "task": {"type": "worker", "index": 2}})
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ConfigError, match="TF_CONFIG environment variable, which is not set"):
        worker_role()
