"""Data larger than memory: ``fmtrain data pack`` shards, the streamed ``tfrecord`` source, exact order and resume,
bad shards refused before training, adapting steps fitted on the training stream only."""

from __future__ import annotations

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

tf = pytest.importorskip("tensorflow")

from stream_checks import check_epochs_in_one_pipeline, check_resume_ends_equal  # noqa: E402

from fmtrain.cli import app  # noqa: E402
from fmtrain.config import load_config  # noqa: E402
from fmtrain.fit import FitOptions, fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ("train: {epochs: 3, early_stopping: null, jit_compile: false, deterministic: true, "
         "checkpoint: {keep_last: 50, every_steps: 8}}")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """digits (the in-memory config's splits) packed into 3 training shards by the CLI."""
    out = tmp_path_factory.mktemp("shards")
    result = CliRunner().invoke(app, ["data", "pack", str(ROOT / "configs/digits_mlp.yaml"), str(out), "--shards", "3",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def _block(shards: Path) -> dict:
    return yaml.safe_load((shards / "data.yaml").read_text())["data"]


def _config(tmp: Path, data: dict, name: str = "stream", extra: str = TRAIN) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(f"extends: {ROOT / 'configs/digits_mlp.yaml'}\nname: {name}\n{extra}\n"
                    + yaml.safe_dump({"data": {**data, "batch_size": 64}}))
    return path


def test_pack_writes_every_split_and_a_block_that_names_them(shards):
    block = _block(shards)
    assert sorted(p.name for p in shards.glob("train-*.tfrecord")) == [f"train-0000{i}-of-00003.tfrecord"
                                                                          for i in range(3)]
    assert block["source"] == "tfrecord" and set(block["files"]) == {"train", "val", "test"}
    assert block["features"]["x"] == {"dtype": "float32", "shape": [8, 8], "raw": True} and block["label"] == "label"
    counted = {split: sum(1 for _ in tf.data.TFRecordDataset(sorted(map(str, shards.glob(f"{split}-*")))))
               for split in ("train", "val", "test")}
    assert counted == {"train": 1149, "val": 288, "test": 360}  # digits_mlp.yaml's splits of 1,797 images


@pytest.fixture(scope="module")
def streamed_run(shards, tmp_path_factory):
    """fit on the shards: 3 epochs of 18 steps, a checkpoint every 8 steps or so."""
    folder = tmp_path_factory.mktemp("streamed")
    config = _config(folder, _block(shards))
    return config, fit(load_config(config), FitOptions(run_dir=folder / "run", quiet=True))


def test_training_from_the_shards_reaches_the_in_memory_accuracy_and_eval_streams_exactly(streamed_run, tmp_path):
    config, streamed = streamed_run
    memory = fit(load_config(_config(tmp_path, {"source": "digits"}, "memory")),
                 FitOptions(run_dir=tmp_path / "m", quiet=True))
    # The same examples (pack wrote fit's splits), in another order: the same accuracy within run noise.
    assert streamed.metrics.data == memory.metrics.data == {"train": 1149, "val": 288, "test": 360}
    assert streamed.metrics.final["test"]["accuracy"] > 0.85
    assert abs(streamed.metrics.final["test"]["accuracy"] - memory.metrics.final["test"]["accuracy"]) < 0.04
    run = streamed.run.path

    # eval streams the 360 test records (batches of 256: the last one partial) and gets fit's numbers exactly.
    result = CliRunner().invoke(app, ["eval", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    evaluated = yaml.safe_load((run / "eval-test.json").read_text())
    assert evaluated["n_samples"] == 360
    assert evaluated["metrics"]["accuracy"] == pytest.approx(streamed.metrics.final["test"]["accuracy"], abs=1e-6)
    assert evaluated["classification"]["confusion_matrix"] is not None
    info = yaml.safe_load((run / "data_info.json").read_text())
    assert info["streamed"]["counts"] == {"train": 1149, "val": 288, "test": 360}
    assert info["streamed"]["features"]["x"]["shape"] == [8, 8] and info["streamed"]["features"]["x"]["raw"]
    # The report's model table is there; class counts and overlaps would need the arrays a stream never holds.
    assert (run / "model_summary.json").exists() and not (run / "data_stats.json").exists()


def _stream(shards: Path, **overrides):
    from fmtrain.data import build

    cfg = load_config(_config(shards.parent, {**_block(shards), **overrides}))
    return build(cfg.data, seed=cfg.seed).train


def _labels(dataset) -> np.ndarray:
    return np.concatenate([y.numpy() for _, y in dataset])


def test_the_order_depends_only_on_seed_and_epoch_and_a_start_skips_exactly(shards):
    stream = _stream(shards)
    steps = -(-len(stream) // 64)

    def order(seed, epoch, start=0):
        return _labels(stream.train_batches(64, seed=seed, epoch=epoch, shuffle=True, start=start, steps=steps))

    first = order(1, 0)
    assert len(first) == steps * 64
    tf.random.set_seed(12345)  # the global seed plays no part
    np.testing.assert_array_equal(order(1, 0), first)
    assert not np.array_equal(order(1, 1), first) and not np.array_equal(order(2, 0), first)
    np.testing.assert_array_equal(order(1, 0, start=7), first[7 * 64:])


@pytest.mark.parametrize("buffer", [100, 10_000])
def test_the_streamed_order_is_the_documented_one(shards, buffer):
    """Shards in the seeded order, read in runs of min(RUN, buffer / shards) records each in turn, blocks
    of ``buffer`` examples permuted by stateless keys from (seed, epoch, block), the last batch filled
    with the pass's first rows; a start skips exactly (with buffer 100, 9 batches skip 5 blocks unparsed)."""
    from dataclasses import replace

    from fmtrain.data.tfrecord import RUN

    stream = _stream(shards, shuffle_buffer=buffer)
    batch, seed, epoch, n = 64, 3, 1, len(stream)
    steps = -(-n // batch)
    files = [stream.files[i] for i in np.random.default_rng([seed, epoch]).permutation(len(stream.files))]
    shard_rows = [replace(stream, files=(path,)).arrays(None)[0] for path in files]
    run = min(RUN, buffer // len(files))
    runs = [rows[i:i + run] for i in range(0, max(map(len, shard_rows)), run) for rows in shard_rows]
    rows = np.concatenate([r for r in runs if len(r)])
    key = int(np.random.default_rng([seed, epoch, 1]).integers(2**31 - 1))
    blocks = []
    for number, first in enumerate(range(0, n, buffer)):
        block = rows[first:first + buffer]
        keys = tf.random.stateless_uniform([len(block)], seed=tf.constant([key, number], tf.int64)).numpy()
        blocks.append(block[np.argsort(keys)])
    expected = np.concatenate(blocks)
    expected = np.concatenate([expected, expected[:steps * batch - n]])
    for start in (0, 3, 9):
        got = stream.train_batches(batch, seed=seed, epoch=epoch, shuffle=True, start=start, steps=steps)
        np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in got]), expected[start * batch:])


def test_one_pipeline_covers_many_epochs_each_in_its_own_order_and_the_feed_opens_it_once(shards):
    check_epochs_in_one_pipeline(_stream(shards, shuffle_buffer=100), batch_size=64, start=5)


def test_a_streamed_run_stopped_mid_epoch_and_resumed_ends_equal_to_the_uninterrupted_one(streamed_run, tmp_path):
    """As tests/test_resume.py, in-process: stop mid-epoch (a checkpoint is written), resume in a new
    fit (a new model, a new stream that skips the batches trained), compare every array."""
    config, whole = streamed_run
    check_resume_ends_equal(load_config(config), whole, tmp_path / "run", stop_at=26, steps=54)


# --------------------------------------------------------------------------- bad shards


def _fit_error(tmp_path, data: dict) -> str:
    result = CliRunner().invoke(app, ["fit", str(_config(tmp_path, data)), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
    return result.output


def _write(path: Path, records: list[dict]) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            features = {}
            for name, value in record.items():
                if isinstance(value, str | bytes):
                    value = value.encode() if isinstance(value, str) else value
                    features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                elif isinstance(value, int):
                    features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
                else:
                    features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=list(value)))
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return str(path)


def test_a_corrupt_shard_is_refused_before_training_naming_the_file(shards, tmp_path):
    bad = tmp_path / "bad.tfrecord"
    raw = (shards / "train-00001-of-00003.tfrecord").read_bytes()
    bad.write_bytes(raw[:5000] + bytes(b ^ 0xFF for b in raw[5000:5100]) + raw[5100:])
    block = _block(shards)
    block["files"] = {**block["files"], "train": [block["files"]["train"], str(bad)]}
    assert f"error: {bad}: corrupt TFRecord shard" in _fit_error(tmp_path, block)


def test_a_missing_feature_a_wrong_dtype_a_wrong_length_and_an_empty_glob_name_the_file(tmp_path):
    shard = _write(tmp_path / "t.tfrecord", [{"x": [1.0, 2.0], "label": 1}, {"x": [0.0, 1.0], "label": 0}])
    good = {"source": "tfrecord", "files": {"train": shard}, "label": "label",
            "features": {"x": {"dtype": "float32", "shape": [2]}, "label": "int64"}}
    missing = {**good, "features": {**good["features"], "z": "float32"}}
    assert f"error: {shard}: record 1 has no feature 'z' (data.features.z); it has label, x" in _fit_error(
        tmp_path, missing)
    wrong = {**good, "features": {**good["features"], "x": {"dtype": "int64", "shape": [2]}}}
    assert (f"error: {shard}: record 1 stores feature 'x' as a float_list but data.features.x says dtype int64"
            in _fit_error(tmp_path, wrong))
    # Every record is parsed before training, not only the first of each shard.
    longer = _write(tmp_path / "l.tfrecord", [{"x": [1.0, 2.0], "label": 1}, {"x": [0.0, 1.0, 2.0], "label": 0}])
    assert (f"error: {longer}: record 2 holds 3 value(s) of feature 'x' but data.features.x shape [2] needs 2"
            in _fit_error(tmp_path, {**good, "files": {"train": longer}}))
    raw = _write(tmp_path / "r.tfrecord", [{"x": np.float32([1, 2]).tobytes(), "label": 1},
                                           {"x": np.float32([1, 2, 3]).tobytes(), "label": 0}])
    raw_spec = {**good, "files": {"train": raw}, "features": {"x": {"dtype": "float32", "shape": [2], "raw": True},
                                                              "label": "int64"}}
    assert (f"error: {raw}: record 2 holds 12 bytes of feature 'x' but data.features.x (raw float32, shape [2]) "
            "needs 8" in _fit_error(tmp_path, raw_spec))
    empty = {**good, "files": {"train": str(tmp_path / "none-*.tfrecord")}}
    assert f"data.files.train: '{tmp_path / 'none-*.tfrecord'}' matches no file" in _fit_error(tmp_path, empty)


# --------------------------------------------------------------------------- adapting steps


def test_adapting_steps_see_the_training_stream_only(tmp_path):
    from fmtrain.fit import _prepare

    train = _write(tmp_path / "train.tfrecord", [{"city": c, "label": i % 2} for i, c in enumerate(["a", "b"] * 20)])
    val = _write(tmp_path / "val.tfrecord", [{"city": "only_in_val", "label": 0}, {"city": "a", "label": 1}])
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "lookup", "seed": 1,
        "data": {"source": "tfrecord", "files": {"train": train, "val": val}, "label": "label",
                 "features": {"city": "text", "label": "int64"}, "adapt_samples": 30},
        "preprocess": [{"lookup": {"output_mode": "one_hot"}}],
        "model": {"type": "mlp", "hidden_units": [4]}, "train": {"epochs": 1},
    }))
    prepared = _prepare(load_config(config), FitOptions(), None, "float32")
    lookups = [layer for layer in prepared.model.layers if "lookup" in type(layer).__name__.lower()]
    assert len(lookups) == 1
    vocabulary = lookups[0].get_vocabulary()
    assert "only_in_val" not in vocabulary and {"a", "b"} <= set(vocabulary)
    assert len(prepared.splits.val) == 2 and len(prepared.splits.train) == 40


def test_pack_refuses_a_folder_with_shards_and_a_streamed_source(shards, tmp_path):
    again = CliRunner().invoke(app, ["data", "pack", str(ROOT / "configs/digits_mlp.yaml"), str(shards)])
    assert again.exit_code == 2 and f"{shards} holds shards already; pack into an empty folder" in again.output
    streamed = CliRunner().invoke(app, ["data", "pack", str(_config(tmp_path, _block(shards))), str(tmp_path / "o")])
    assert streamed.exit_code == 2 and "'tfrecord' streams already" in streamed.output
    assert not (tmp_path / "o").exists()


def test_a_resumed_streamed_run_refuses_shards_that_changed(streamed_run):
    from dataclasses import replace

    from fmtrain.data import DataInfo
    from fmtrain.errors import DataError
    from fmtrain.fit import check_same_shards

    _, whole = streamed_run
    run = whole.run
    info = DataInfo.from_dict(run.read_json(run.data_info))
    check_same_shards(run, info)  # the same shards: nothing to say
    grown = {**info.streamed, "counts": {**info.streamed["counts"], "train": 1150}}
    with pytest.raises(DataError, match=r"data.files.train now gives 3 shard\(s\) of 1150 examples but the run "
                                        r"started with 3 shard\(s\) of 1149 examples"):
        check_same_shards(run, replace(info, streamed=grown))


# The child: the real CLI, holding still past its first checkpoint in the middle of an epoch (18 steps) until killed.
CHILD = """
import sys, time
from pathlib import Path
from fmtrain.cli import app
from fmtrain.engine.callbacks import CheckpointCallback

marker, on_steps_end = Path(sys.argv[1]), CheckpointCallback.on_steps_end

def paused(self, epoch, step, logs):
    on_steps_end(self, epoch, step, logs)
    if self.last_saved_step % 18 and self.trainer.global_step > self.last_saved_step:
        marker.write_text(str(self.trainer.global_step))
        time.sleep(120)

CheckpointCallback.on_steps_end = paused
app(args=sys.argv[2:], prog_name="fmtrain")
"""


@pytest.mark.slow
def test_a_streamed_run_killed_mid_epoch_and_resumed_with_the_cli_equals_the_uninterrupted_run(streamed_run,
                                                                                                tmp_path):
    from fmtrain.engine.checkpoints import CheckpointManager

    config, whole = streamed_run
    run, marker = tmp_path / "run", tmp_path / "paused"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), "fit", str(config), "--run-dir", str(run),
                              "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not (marker.exists() and marker.read_text()):
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
    saved = CheckpointManager(run / "checkpoints").latest()
    assert saved.state.step > 0  # killed mid-epoch, after a checkpoint there

    resumed = CliRunner().invoke(app, ["fit", "--resume", str(run), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    metrics = yaml.safe_load((run / "metrics.json").read_text())
    assert metrics["resume"]["from_step"] == saved.state.global_step and metrics["global_step"] == 54
    last = CheckpointManager(run / "checkpoints").latest()
    expected = CheckpointManager(whole.run.path / "checkpoints").latest()
    assert last.path.name == expected.path.name
    for group, arrays in expected.groups.items():
        for a, b in zip(last.groups[group], arrays, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=group)
