"""Training on several devices (``distribute:``): MirroredStrategy over 2 logical CPU devices trains
the same loss curve as one device for the same global batch and seed, reports its replicas, and its
checkpoints resume on one device and the other way round. ``fmtrain launch --workers 2`` over streamed
shards continues a one-device checkpoint, survives a SIGKILLed worker (a one-line message naming it and
the --resume command, no process left) and its resume ends on the one-device curve. The Kubeflow example
is a command line fmtrain accepts.

Logical CPU devices can be set only once per process, before TensorFlow initializes its devices, so
the mirrored run and the `fmtrain launch` of two workers are subprocesses; the one-device runs are in-process.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
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
                                          "per_replica_batch": 32, "input_sharding": "data"}
    assert metrics(one)["distribute"] == {"strategy": "one_device", "replicas": 1, "workers": 1,
                                          "per_replica_batch": 64, "input_sharding": None}
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


# `fmtrain launch` in a child whose worker 1 runs through test_resume.CHILD: it holds still past its first
# checkpoint (part-way to the next) and writes the marker `paused`, so the test kills it at a known point.
LAUNCHER = """
import sys
from fmtrain.cli import app
from fmtrain.commands import launch

child, folder, plain = sys.argv[1], sys.argv[2], launch.worker_command

def worker_1_holds(index, fit_args):
    command = plain(index, fit_args)  # [python, -m, fmtrain, fit, ...]
    return command if index != 1 else [sys.executable, "-c", child, "1", folder, "-", *command[3:]]

launch.worker_command = worker_1_holds
app(args=sys.argv[3:], prog_name="fmtrain")
"""
STREAMED_TRAIN = {"epochs": 3, "early_stopping": None, "checkpoint": {"every_steps": 12, "keep_last": 50}}


def workers_of(launcher: int) -> dict[int, int]:
    """The worker processes ``launcher`` started: their TF_CONFIG task index → process id (Linux /proc)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) if proc.name.isdigit() else 0
            if parent == launcher:
                env = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if b"=" in v)
                found[json.loads(env[b"TF_CONFIG"])["task"]["index"]] = int(proc.name)
        except (OSError, KeyError, ValueError):
            continue
    return found


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def newest_step(run: Path) -> int:
    return max((int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.npz")), default=0)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the workers through /proc")
def test_launch_over_streamed_shards_survives_a_killed_worker_and_resumes_to_the_one_device_curve(tmp_path):
    """Two workers (multi_worker, TF_CONFIG on localhost) over tfrecord shards of unequal number per worker
    (3 shards): data sharding keeps the one-device order. The launch starts from a one-device checkpoint
    (1 → 2 replicas), worker 1 is SIGKILLed after a checkpoint, the launch ends naming it and the resume
    command, and that command finishes the run on the one-device curve; only the chief's directory exists."""
    from test_resume import CHILD

    shards, scratch, folder = tmp_path / "shards", tmp_path / "scratch", tmp_path / "held"
    scratch.mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    assert invoke("data", "pack", config, shards, "--shards", "3", "--quiet").exit_code == 0
    block = yaml.safe_load((shards / "data.yaml").read_text())["data"]
    streamed = yaml.safe_load(CONFIG)
    config.write_text(yaml.safe_dump({**streamed, "data": {**block, "batch_size": 64}, "train": STREAMED_TRAIN}))

    one = tmp_path / "one"  # the reference: one device, uninterrupted
    assert invoke("fit", config, "--run-dir", one, "--device", "cpu", "--quiet").exit_code == 0
    run = tmp_path / "run"  # the same run's first epoch, to continue on two workers
    shutil.copytree(one, run)
    for late in (p for p in (run / "checkpoints").glob("step-*.npz") if int(p.stem.split("-")[1]) > 18):
        late.unlink()
    (run / "checkpoints" / "best.json").unlink(missing_ok=True)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(scratch)}
    folder.mkdir()
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, CHILD, folder, "launch", "--workers", "2", "--resume", run,
         "--allow-config-change", "--device", "cpu", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers = {}
    try:
        deadline = time.monotonic() + 180
        while not ((folder / "paused").exists() and (folder / "paused").read_text() and newest_step(run) > 18):
            assert launcher.poll() is None, launcher.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "worker 1 never held past a checkpoint"
            time.sleep(0.05)
        workers = workers_of(launcher.pid)
        assert sorted(workers) == [0, 1]
        killed = time.monotonic()
        os.kill(workers[1], signal.SIGKILL)
        output, _ = launcher.communicate(timeout=60)
        ended = time.monotonic() - killed
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in workers.values():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)

    resume = f"fmtrain launch --workers 2 --resume {run}"
    assert launcher.returncode == 1 and ended < 60, (ended, output[-3000:])
    assert output.splitlines()[-1] == ("error: worker 1 was killed by SIGKILL; the other workers were stopped; "
                                       f"continue from its last checkpoint: {resume}"), output[-3000:]
    assert all(gone(pid) for pid in workers.values())
    saved = newest_step(run)  # the checkpoint worker 1 held past (or one the chief wrote when asked to stop)
    assert saved > 18

    launched = fmtrain_in_child(*resume.split()[1:], "--device", "cpu", "--quiet", TMPDIR=str(scratch))
    assert "[worker 0] " in launched and "[worker 1] " in launched
    assert metrics(run)["resume"]["from_step"] == saved and metrics(run)["global_step"] == 3 * 18
    assert metrics(run)["distribute"] == {"strategy": "multi_worker", "replicas": 2, "workers": 2,
                                          "per_replica_batch": 32, "input_sharding": "data"}
    for key in ("loss", "accuracy", "val_loss"):
        assert losses(run, key) == pytest.approx(losses(one, key), rel=RTOL), key
    for key in ("loss", "accuracy"):
        assert metrics(run)["final"]["test"][key] == pytest.approx(metrics(one)["final"]["test"][key], rel=RTOL)
    # Worker 1's scratch copies of the run are gone, but the one SIGKILL stopped before it could remove it.
    assert [p.name.split("-")[1] for p in scratch.glob("fmtrain-*")] == ["worker1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "held", "one", "run", "scratch", "shards"]


def test_launch_ends_the_other_workers_when_one_dies_and_says_which(monkeypatch):
    from fmtrain.commands import launch

    monkeypatch.setattr(launch, "STOP_AFTER_S", 1)
    monkeypatch.setattr(launch, "KILL_AFTER_S", 1)
    started = time.monotonic()
    # A worker that stops on SIGTERM, one that cannot (as one blocked on a dead peer), and the one that died.
    workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
               subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE, text=True),
               subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2); raise SystemExit(3)"])]
    assert workers[1].stdout.readline() == "ready\n"  # its SIGTERM handler is in place
    assert launch._wait(workers) == (2, 3)
    assert time.monotonic() - started < 15
    assert [w.returncode for w in workers] == [-signal.SIGTERM, -signal.SIGKILL, 3]
    workers[1].stdout.close()


def test_launch_checks_the_config_once_and_fixes_the_run_directory_it_names_before_starting_workers(
        tmp_path, monkeypatch):
    from fmtrain.commands import launch

    def no_workers(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(launch.subprocess, "Popen", no_workers)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {source: digits}\nmodel: {type: mlpp}\n")
    refused = invoke("launch", "--workers", "2", bad, "--device", "cpu")
    assert refused.exit_code == 2 and refused.output.startswith(f"error: {bad}:3:9: model.type: unknown model type")
    assert len(refused.output.strip().splitlines()) == 1

    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    path, args = launch.run_directory([str(config), "--runs-root", str(tmp_path / "runs"), "--quiet"])
    assert path.parent == tmp_path / "runs" / "dist" and args[-2:] == ["--run-dir", str(path)]
    assert launch.run_directory(["--resume", "r", "--quiet"]) == (Path("r"), ["--resume", "r", "--quiet"])
    assert launch.run_directory([str(config), "--run-dir=d"])[0] == Path("d")

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


def test_the_kubeflow_tfjob_example_runs_a_shipped_config_as_fmtrain_parses_it():
    """examples/kubeflow/tfjob.yaml: a TFJob whose every replica runs one `fmtrain fit` command line that the
    CLI accepts, on a config in configs/ that validates with its --set's and whose global batch splits
    evenly among all the replicas; TF_CONFIG is left to the operator."""
    import typer

    from fmtrain.config import load_config

    manifest = yaml.safe_load((ROOT / "examples/kubeflow/tfjob.yaml").read_text())
    assert manifest["apiVersion"] == "kubeflow.org/v1" and manifest["kind"] == "TFJob"
    specs = manifest["spec"]["tfReplicaSpecs"]
    assert sorted(specs) == ["Chief", "Worker"] and specs["Chief"]["replicas"] == 1
    containers = [c for spec in specs.values() for c in spec["template"]["spec"]["containers"]]
    assert [c["name"] for c in containers] == ["tensorflow"] * len(specs)  # the name the operator looks for
    assert not any(e["name"] == "TF_CONFIG" for c in containers for e in c.get("env", []))
    commands = {tuple(c["command"]) for c in containers}
    assert len(commands) == 1, "every replica runs the same command line"
    program, *args = next(iter(commands))
    assert program == "fmtrain" and args[0] == "fit"

    fit = typer.main.get_command(app).commands["fit"]
    params = fit.make_context("fit", list(args[1:])).params  # an unknown option or a missing value raises
    assert (ROOT / params["config"]).is_file() and Path(params["config"]).parts[0] == "configs"
    assert "distribute.strategy=multi_worker" in params["overrides"]
    assert invoke("validate", ROOT / params["config"], *(f"--set={s}" for s in params["overrides"])).exit_code == 0
    cfg = load_config(ROOT / params["config"], params["overrides"])
    assert cfg.data.batch_size % sum(spec["replicas"] for spec in specs.values()) == 0
