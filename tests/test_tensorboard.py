"""Every run writes TensorBoard event files: read back with TensorBoard's own reader, the per-epoch
scalars are the values of history.csv; ``train.profile`` traces the chosen steps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")
pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing import event_accumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

from fmtrain.cli import app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# digits: 1,150 training rows in batches of 32 = 36 steps an epoch, one compiled call each.
STEPS_PER_EPOCH = 36


def _fit(run_dir: Path, *sets: str):
    args = ["fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(run_dir), "--quiet",
            "--set", "train.epochs=3", "--set", "train.early_stopping=null", *[a for s in sets for a in ("--set", s)]]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run_dir


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} as TensorBoard reads the event files of one folder."""
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return {tag: {event.step: float(tensor_util.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)}
            for tag in accumulator.Tags()["tensors"]}


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    # Steps 40..50 fall inside the second epoch's call: that call (steps 36..72) is traced.
    return _fit(tmp_path_factory.mktemp("tb") / "run", "train.profile=[40,50]")


def test_event_scalars_equal_history_csv_value_by_value(profiled_run):
    with (profiled_run / "history.csv").open() as f:
        history = list(csv.DictReader(f))
    train = _scalars(profiled_run / "tensorboard" / "train")
    validation = _scalars(profiled_run / "tensorboard" / "validation")

    expected_train_tags = {"epoch_learning_rate" if c == "lr" else f"epoch_{c}"
                           for c in history[0] if c != "epoch" and not c.startswith("val_")}
    assert set(train) == expected_train_tags
    assert set(validation) == {f"epoch_{c[4:]}" for c in history[0] if c.startswith("val_")}
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(train)
    assert {"epoch_loss", "epoch_accuracy"} <= set(validation)
    for row in history:
        epoch = int(row["epoch"])
        for column, text in row.items():
            if column == "epoch":
                continue
            if column.startswith("val_"):
                written = validation[f"epoch_{column[4:]}"]
            else:
                written = train["epoch_learning_rate" if column == "lr" else f"epoch_{column}"]
            # history.csv keeps 6 significant digits: a rounding of the value, within half a unit of the 6th.
            assert written[epoch] == pytest.approx(float(text), rel=5.1e-6, abs=1e-12), (column, epoch)
    assert all(len(values) == len(history) == 3 for values in [*train.values(), *validation.values()])


def test_profile_traces_the_chosen_steps(profiled_run):
    traces = list((profiled_run / "tensorboard" / "train" / "plugins" / "profile").rglob("*.xplane.pb"))

    assert len(traces) == 1 and traces[0].stat().st_size > 0


class _Trainer:
    global_step = 0


@pytest.mark.parametrize("profile, epochs, call, traced", [
    ((40, 50), 3, 36, (36, 72)),   # inside the second call: that whole call
    ((0, 10), 3, 36, (0, 36)),     # from the first step: the first call
    ((30, 40), 3, 36, (0, 72)),    # across a boundary: both calls
    ((40, 50), 3, 12, (36, 60)),   # three calls an epoch: the two that hold steps 40..49
    ((36, 72), 1, 36, None),       # from the last step on: nothing to trace
    ((500, 600), 3, 36, None),     # past the end
])
def test_the_profiler_covers_whole_calls_around_the_range(tmp_path, monkeypatch, profile, epochs, call, traced):
    """Which compiled calls TensorFlow's profiler runs over (epochs of 36 steps, ``call`` steps a call)."""
    import tensorflow as tf

    from fmtrain.integrations.tensorboard import TensorBoardCallback

    switched = []
    monkeypatch.setattr(tf.profiler.experimental, "start", lambda logdir: switched.append(("start", logdir)))
    monkeypatch.setattr(tf.profiler.experimental, "stop", lambda: switched.append(("stop",)))
    callback = TensorBoardCallback(tmp_path, profile)
    callback.trainer = trainer = _Trainer()
    callback.on_train_begin({"epochs": epochs, "steps": STEPS_PER_EPOCH, "initial_epoch": 0})
    for epoch in range(epochs):
        for step in range(call, STEPS_PER_EPOCH + 1, call):
            trainer.global_step += call
            callback.on_steps_end(epoch, step, {"loss": 1.0})
        callback.on_epoch_end(epoch, {"loss": 1.0, "lr": 0.1})
    callback.on_train_end([])

    assert callback.profiled == traced
    assert len(switched) == (2 if traced else 0)
