"""Checks the streamed sources share (tests/test_stream.py, test_stream_csv.py, test_stream_parquet.py): the
digits splits to write as files, the order/skip contract of a stream, one pipeline for many epochs, a stopped
and resumed run ending equal to the uninterrupted one, eval on a streamed run, and a ``fit`` that must stop
with exit 2 before writing anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from stopping import StopAt
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.config import load_config
from fmtrain.config.schema import Config
from fmtrain.data import build
from fmtrain.errors import Interrupted
from fmtrain.fit import FitOptions, FitOutcome, fit

ROOT = Path(__file__).resolve().parents[1]


def digits_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """digits_mlp.yaml's in-memory splits, seed 42: split → (x as rows of 64 pixels, y)."""
    splits = build(load_config(ROOT / "configs/digits_mlp.yaml").data, seed=42)
    return {name: (np.asarray(split.x).reshape(len(split), -1), np.asarray(split.y))
            for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test))}


def check_order_and_skip(stream, *, batch_size: int, start: int) -> None:
    """A stream's training order depends only on (seed, epoch) — not on TensorFlow's global seed — and
    ``start`` skips exactly that many batches of it."""
    steps = -(-len(stream) // batch_size)

    def order(seed: int, epoch: int, start: int = 0) -> np.ndarray:
        batches = stream.train_batches(batch_size, seed=seed, epoch=epoch, shuffle=True, start=start, steps=steps)
        return np.concatenate([x.numpy() for x, _ in batches])

    first = order(1, 0)
    assert first.shape[0] == steps * batch_size
    import tensorflow as tf

    tf.random.set_seed(12345)  # the global seed plays no part
    np.testing.assert_array_equal(order(1, 0), first)
    assert not np.array_equal(order(1, 1), first) and not np.array_equal(order(2, 0), first)
    np.testing.assert_array_equal(order(1, 0, start=start), first[start * batch_size:])


def check_epochs_in_one_pipeline(stream, *, batch_size: int, start: int) -> None:
    """One training pipeline covers several epochs, each in the order it has alone (``start`` skips into
    the first), and :class:`StreamFeed` opens it once for three epochs, and once when resuming mid-epoch.
    Each pipeline costs about a second to build, so a stream that built one per epoch paid it every epoch."""
    from fmtrain.engine.feeds import StreamFeed

    steps = -(-len(stream) // batch_size)
    assert steps > start + 1 and stream.epochs_at_once > 3

    def rows(batches) -> tuple[np.ndarray, np.ndarray]:
        """Examples and their labels, in order: each example must keep its own label."""
        batches = [(x.numpy(), y.numpy()) for x, y in batches]
        return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])

    def joined(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    def after(part: tuple[np.ndarray, np.ndarray], skip: int) -> tuple[np.ndarray, np.ndarray]:
        return part[0][skip * batch_size:], part[1][skip * batch_size:]

    def same(got, expected) -> None:
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)

    expected = {e: rows(stream.train_batches(batch_size, seed=1, epoch=e, shuffle=True, start=0, steps=steps))
                for e in range(3)}
    same(rows(stream.train_batches(batch_size, seed=1, epoch=1, shuffle=True, start=start, steps=steps, epochs=2)),
         joined(after(expected[1], start), expected[2]))

    def train(feed: StreamFeed, epochs: range, first_step: int = 0) -> tuple[np.ndarray, np.ndarray]:
        seen = []
        for e in epochs:
            feed.begin_epoch(e)
            step = first_step if e == epochs[0] else 0
            while step < steps:
                iterator, n = feed.args(step, min(8, steps - step))
                seen += [next(iterator) for _ in range(int(n))]
                step += int(n)
        return rows(seen)

    feed = StreamFeed(stream, batch_size, seed=1, shuffle=True)
    same(train(feed, range(3)), joined(*expected.values()))
    assert feed.pipelines == 1  # built once for the three epochs
    resumed = StreamFeed(stream, batch_size, seed=1, shuffle=True)
    same(train(resumed, range(1, 3), first_step=start), joined(after(expected[1], start), expected[2]))
    assert resumed.pipelines == 1


def check_resume_ends_equal(cfg: Config, whole: FitOutcome, run_dir: Path, *, stop_at: int, steps: int) -> None:
    """``cfg`` stopped at global step ``stop_at`` (which must fall inside epoch 2) and resumed trains the
    rest of its ``steps`` and ends as ``whole``, its uninterrupted run, did: the same last checkpoint,
    array for array, and the same final metrics."""
    from fmtrain.engine.checkpoints import CheckpointManager

    with pytest.raises(Interrupted):
        fit(cfg, FitOptions(run_dir=run_dir, quiet=True, callbacks=[StopAt(stop_at)]))
    saved = CheckpointManager(run_dir / "checkpoints").latest()
    assert saved.state.epoch == 1 and saved.state.step > 0  # mid-epoch 2

    resumed = fit(cfg, FitOptions(resume=run_dir, quiet=True))
    assert resumed.metrics.resume.steps_trained == steps - saved.state.global_step
    last = CheckpointManager(run_dir / "checkpoints").latest()
    expected = CheckpointManager(whole.run.path / "checkpoints").latest()
    assert last.path.name == expected.path.name and last.groups.keys() == expected.groups.keys()
    for group, arrays in expected.groups.items():
        for a, b in zip(last.groups[group], arrays, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=group)
    assert resumed.metrics.final == whole.metrics.final


def check_eval_streams_exactly(run_path: Path, test_accuracy: float, n_samples: int) -> None:
    """``fmtrain eval`` on a streamed run reads every test example once and scores what fit scored."""
    result = CliRunner().invoke(app, ["eval", str(run_path), "--quiet"])
    assert result.exit_code == 0, result.output
    evaluated = yaml.safe_load((run_path / "eval-test.json").read_text())
    assert evaluated["n_samples"] == n_samples
    assert evaluated["metrics"]["accuracy"] == pytest.approx(test_accuracy, abs=1e-6)


def fit_error(tmp_path: Path, config: Path) -> str:
    """``fmtrain fit CONFIG``'s message, whitespace-joined, after checking that it exited 2 with one
    message (no traceback) and wrote no run."""
    result = CliRunner().invoke(app, ["fit", str(config), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
    return " ".join(result.output.split())
