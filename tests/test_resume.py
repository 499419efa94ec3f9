"""Checkpoints and resume: a run killed at any point continues exactly; interruptions are safe.

The subprocess tests run the real CLI in a child that holds still at a known point (after its
N-th checkpoint, part-way to the next) and says so; the test signals it there. So each kill or
signal lands where the test says it does, however fast or slow the machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from fmtrain.cli import app  # noqa: E402
from fmtrain.engine.checkpoints import (  # noqa: E402
    FORMAT_VERSION,
    CheckpointManager,
    Snapshot,
    TrainingState,
    load_checkpoint,
)
from fmtrain.errors import RunDirError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# 4 epochs of 36 steps in calls of 9; a checkpoint every 18 steps: 8 in all, the last at step 144.
# Without XLA, whose compile time would double this file's run time; test_engine.py resumes under XLA.
DETERMINISTIC = f"""extends: {ROOT / 'configs/digits_mlp.yaml'}
train:
  epochs: 4
  deterministic: true
  jit_compile: false
  early_stopping: null
  checkpoint: {{every_steps: 10, keep_last: 50}}
"""

# The child: the real CLI, holding still after its N-th checkpoint (and, with slow-stop, while
# handling a stop) until the test's signal arrives or a minute passes. It writes a marker file
# with the global step each time it starts holding.
CHILD = """
import sys, time
from pathlib import Path
from fmtrain.cli import app
from fmtrain.engine.callbacks import CheckpointCallback

pause_after, folder, slow_stop = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "slow-stop"
on_steps_end, on_interrupt = CheckpointCallback.on_steps_end, CheckpointCallback.on_interrupt

def hold(marker, trainer, until):
    (folder / marker).write_text(str(trainer.global_step))
    deadline = time.monotonic() + 60
    while not until() and time.monotonic() < deadline:
        time.sleep(0.01)

def paused_on_steps_end(self, epoch, step, logs):
    on_steps_end(self, epoch, step, logs)
    past = len(self.saved) == pause_after and self.trainer.global_step > self.last_saved_step
    if past and not (folder / "paused").exists():
        hold("paused", self.trainer, lambda: self.trainer.stop_reason)

def slow_on_interrupt(self, epoch, step):
    hold("stopping", self.trainer, lambda: False)
    on_interrupt(self, epoch, step)

CheckpointCallback.on_steps_end = paused_on_steps_end
if slow_stop:
    CheckpointCallback.on_interrupt = slow_on_interrupt
app(args=sys.argv[4:], prog_name="fmtrain")
"""


class Child:
    """A ``fmtrain fit`` process run through CHILD."""

    def __init__(self, folder: Path, pause_after: int, args: list, slow_stop: bool = False):
        folder.mkdir(parents=True)
        self.folder = folder
        self._stderr = open(folder / "stderr.txt", "w")  # a file, not a pipe: the child never blocks on it
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(pause_after), str(folder), "slow-stop" if slow_stop else "-",
             "fit", *map(str, args)], stdout=subprocess.DEVNULL, stderr=self._stderr)

    def wait_for(self, marker: str, timeout: float = 180) -> int:
        """The global step at which the child started holding at ``marker``."""
        deadline = time.monotonic() + timeout
        path = self.folder / marker
        while not (path.exists() and path.read_text()):  # the text lands just after the file appears
            assert self.process.poll() is None, f"the child exited before '{marker}':\n{self.stderr()}"
            assert time.monotonic() < deadline, f"no '{marker}' after {timeout} s:\n{self.stderr()}"
            time.sleep(0.02)
        return int(path.read_text())

    def stderr(self) -> str:
        self._stderr.flush()
        return (self.folder / "stderr.txt").read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=60)
        self._stderr.close()


@contextmanager
def child_fit(folder: Path, pause_after: int, *args, slow_stop: bool = False):
    child = Child(folder, pause_after, list(args), slow_stop)
    try:
        yield child
    finally:
        child.close()


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def read_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def final_numbers(run: Path) -> dict:
    return {split: values for split, values in read_metrics(run)["final"].items() if values}


def history_without_timing(run: Path) -> list[dict]:
    import csv

    with open(run / "history.csv") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def checkpoint_names(run: Path) -> list[str]:
    return [path.name for path in CheckpointManager(run / "checkpoints").checkpoints()]


def assert_same_final_state(run: Path, reference: Path) -> None:
    """The same numbers, history and last checkpoint, array by array (model, optimizer, metrics)."""
    assert final_numbers(run) == final_numbers(reference)
    assert history_without_timing(run) == history_without_timing(reference)
    last = CheckpointManager(run / "checkpoints").latest()
    expected = CheckpointManager(reference / "checkpoints").latest()
    assert last.path.name == expected.path.name
    assert last.groups.keys() == expected.groups.keys()
    for group, arrays in expected.groups.items():
        assert len(last.groups[group]) == len(arrays)
        for i, (a, b) in enumerate(zip(last.groups[group], arrays, strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=f"{group} variable {i}")


def assert_resumed_from(run: Path, checkpoint: str, total_steps: int) -> None:
    """metrics.json says what the trainer did: which checkpoint it loaded, and that it trained only the rest."""
    metrics = read_metrics(run)
    from_step = load_checkpoint(run / "checkpoints" / checkpoint).state.global_step
    assert metrics["resume"] == {"checkpoint": checkpoint, "from_step": from_step,
                                 "steps_trained": total_steps - from_step}
    assert metrics["resumed_from_step"] == from_step and metrics["global_step"] == total_steps


def test_checkpoint_files_are_atomic_and_damaged_ones_are_skipped(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    for step in (10, 20, 30):
        manager.save(Snapshot(TrainingState(epoch=0, step=step, global_step=step),
                              {"model": [np.full(3, step, np.float32)]}), score=float(-step))
    newest = manager.checkpoints()[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # a crash mid-copy, or a full disk
    latest = manager.latest()
    assert latest.path.name == "step-000000020.npz" and latest.state.global_step == 20
    assert latest.groups["model"][0].tolist() == [20, 20, 20]
    with pytest.raises(RunDirError, match="damaged checkpoint"):
        load_checkpoint(newest)
    assert not list(tmp_path.glob("*.tmp"))


def test_keeps_the_last_k_and_the_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=True)
    for step, score in ((1, 0.1), (2, 0.5), (3, 0.4), (4, 0.3)):
        manager.save(Snapshot(TrainingState(epoch=0, step=step, global_step=step), {"model": []}), score=score)
    assert [p.name for p in manager.checkpoints()] == ["step-000000001.npz", "step-000000003.npz", "step-000000004.npz"]


def test_a_format_1_checkpoint_still_loads_and_a_newer_one_is_refused(tmp_path):
    """Format 1 kept callback states and call losses in one ``extra`` dict."""
    import io

    def write(path, meta):
        buffer = io.BytesIO()
        np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                 **{"model/0": np.ones(2, np.float32)})
        path.write_bytes(buffer.getvalue())

    state = {"epoch": 1, "step": 3, "global_step": 39, "history": [], "config_hash": "abc",
             "extra": {"callbacks": {"EarlyStopping": {"best": 0.5, "best_epoch": 0, "wait": 1}},
                       "call_losses": [2.0, 1.5]}}
    write(tmp_path / "old.npz", {"format": 1, "state": state, "groups": {"model": 1}})
    loaded = load_checkpoint(tmp_path / "old.npz")
    assert loaded.state.callbacks == {"EarlyStopping": {"best": 0.5, "best_epoch": 0, "wait": 1}}
    assert loaded.state.call_losses == [2.0, 1.5] and loaded.groups["model"][0].tolist() == [1.0, 1.0]
    write(tmp_path / "new.npz", {"format": FORMAT_VERSION + 1, "state": {"x": 1}, "groups": {"model": 1}})
    with pytest.raises(RunDirError, match="newer fmtrain"):
        load_checkpoint(tmp_path / "new.npz")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    (tmp / "c.yaml").write_text(DETERMINISTIC)
    result = invoke("fit", tmp / "c.yaml", "--run-dir", tmp / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.fixture(scope="module")
def total_steps(uninterrupted) -> int:
    metrics = read_metrics(uninterrupted)
    assert metrics["global_step"] == 144 and metrics["resume"] is None and metrics["resumed_from_step"] is None
    assert len(checkpoint_names(uninterrupted)) == 8
    return metrics["global_step"]


def test_deterministic_runs_are_identical(uninterrupted, tmp_path):
    (tmp_path / "c.yaml").write_text(DETERMINISTIC)
    assert invoke("fit", tmp_path / "c.yaml", "--run-dir", tmp_path / "again", "--quiet").exit_code == 0
    assert read_metrics(tmp_path / "again")["loss_fingerprint"] == read_metrics(uninterrupted)["loss_fingerprint"]
    assert_same_final_state(tmp_path / "again", uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("after_checkpoints", [1, 3, 6])
def test_killed_after_some_checkpoints_and_resumed_equals_uninterrupted(after_checkpoints, uninterrupted,
                                                                         total_steps, tmp_path):
    """SIGKILL a real process part-way between its N-th and next of 8 checkpoints; resume; compare."""
    (tmp_path / "c.yaml").write_text(DETERMINISTIC)
    run = tmp_path / "run"
    with child_fit(tmp_path / "child", after_checkpoints, tmp_path / "c.yaml", "--run-dir", run, "--quiet") as child:
        killed_at = child.wait_for("paused")
        child.process.send_signal(signal.SIGKILL)
        assert child.process.wait(timeout=60) == -signal.SIGKILL
    on_disk = checkpoint_names(run)
    assert len(on_disk) == after_checkpoints and not (run / "metrics.json").exists()
    assert load_checkpoint(run / "checkpoints" / on_disk[-1]).state.global_step < killed_at  # steps were lost

    resumed = invoke("fit", "--resume", run, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert_resumed_from(run, on_disk[-1], total_steps)
    assert_same_final_state(run, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_call_saves_exits_130_and_resumes_exactly(signum, uninterrupted, total_steps,
                                                                             tmp_path):
    (tmp_path / "c.yaml").write_text(DETERMINISTIC)
    run = tmp_path / "run"
    with child_fit(tmp_path / "child", 2, tmp_path / "c.yaml", "--run-dir", run, "--quiet") as child:
        signalled_at = child.wait_for("paused")  # step 45: past the checkpoints at 18 and 36
        child.process.send_signal(signum)
        assert child.process.wait(timeout=120) == 130, child.stderr()
        stderr = child.stderr()
    assert f"continue with: fmtrain fit --resume {run}" in stderr and "Traceback" not in stderr
    assert (run / "history.csv").exists() and (run / "report.md").exists()
    stopped = CheckpointManager(run / "checkpoints").latest()
    assert stopped.state.global_step == signalled_at  # saved where the call it was in ended
    partial = read_metrics(run)
    assert partial["interrupted"]["global_step"] == signalled_at and partial["name"] == "digits_mlp"
    assert f"fmtrain fit --resume {run}" in (run / "report.md").read_text()

    resumed = invoke("fit", "--resume", run, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert_resumed_from(run, stopped.path.name, total_steps)
    assert_same_final_state(run, uninterrupted)


def test_a_second_sigint_while_the_first_is_handled_stops_at_once(tmp_path):
    (tmp_path / "c.yaml").write_text(DETERMINISTIC)
    run = tmp_path / "run"
    with child_fit(tmp_path / "child", 1, tmp_path / "c.yaml", "--run-dir", run, "--quiet", slow_stop=True) as child:
        child.wait_for("paused")
        child.process.send_signal(signal.SIGINT)
        child.wait_for("stopping")  # the first stop is being handled; it would take a minute
        sent = time.monotonic()
        child.process.send_signal(signal.SIGINT)
        assert child.process.wait(timeout=60) == 130, child.stderr()
        seconds = time.monotonic() - sent
        stderr = child.stderr()
    assert seconds < 20, f"took {seconds:.1f} s to stop"
    assert "stopped at once by SIGINT" in stderr and f"fmtrain fit --resume {run}" in stderr
    assert "Traceback" not in stderr
    assert checkpoint_names(run) == ["step-000000018.npz"]  # the stop's own checkpoint was never written


def test_resume_with_a_changed_config_is_refused_unless_allowed(uninterrupted, tmp_path):
    run = tmp_path / "copy"
    import shutil

    shutil.copytree(uninterrupted, run)
    refused = invoke("fit", "--resume", run, "--set", "optimizer.learning_rate=0.5", "--quiet")
    assert refused.exit_code == 2 and "optimizer.learning_rate" in refused.output
    allowed = invoke("fit", "--resume", run, "--set", "train.epochs=5", "--allow-config-change")
    assert allowed.exit_code == 0, allowed.output
    assert f"resuming {run} from step-000000144.npz: epoch 5, step 0 (global step 144)" in allowed.output
    metrics = read_metrics(run)
    assert metrics["epochs_run"] == 5 and metrics["global_step"] == 5 * 36
    assert metrics["resume"] == {"checkpoint": "step-000000144.npz", "from_step": 144, "steps_trained": 36}
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 5


def test_a_diverging_run_stops_with_exit_1_and_every_checkpoint_on_disk_is_finite(tmp_path):
    """The learning rate jumps after step 31: the checkpoint at 18 was written before the divergence,
    and nothing written after it holds an inf or NaN."""
    config = tmp_path / "c.yaml"
    config.write_text(DETERMINISTIC + "optimizer: {name: sgd, learning_rate: "
                      "{schedule: piecewise, boundaries: [30], values: [0.01, 1.0e+12]}}\n")
    result = invoke("fit", config, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 1, result.output
    assert "(global step 36)" in result.output and "learning_rate" in result.output
    paths = CheckpointManager(tmp_path / "run" / "checkpoints").checkpoints()
    assert [path.name for path in paths] == ["step-000000018.npz"]
    for path in paths:
        groups = load_checkpoint(path).groups
        assert all(np.isfinite(v).all() for group in ("model", "optimizer") for v in groups[group]
                   if v.dtype.kind == "f"), path.name


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
