"""``source: csv`` with ``stream: true``: csv shards (a glob) streamed through the Parquet machinery — digits
train as in memory, the encoders are the in-memory csv path's, splits are whole shards, order and skipping are
exact, bad shards exit 2 naming the file. The resume of a table stream is tests/test_stream_parquet.py's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")
pytest.importorskip("pyarrow")

from stream_checks import (  # noqa: E402
    check_epochs_in_one_pipeline,
    check_eval_streams_exactly,
    check_order_and_skip,
    digits_splits,
    fit_error,
)

from fmtrain.config import load_config  # noqa: E402
from fmtrain.data import build  # noqa: E402
from fmtrain.fit import FitOptions, fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = "train: {epochs: 3, early_stopping: null, jit_compile: false, deterministic: true}"
HEADER = ",".join([f"p{i}" for i in range(64)] + ["digit"])


def _write(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    rows = [",".join([*(f"{v:g}" for v in row), str(label)]) for row, label in zip(x, y, strict=True)]
    path.write_text("\n".join([HEADER, *rows]) + "\n")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """digits_mlp.yaml's in-memory splits as csv shards: digits-0..2 train, digits-3 val, digits-4 test
    (the last shards in name order are held out: 1 of 5 for test_split 0.2, then 1 for validation)."""
    out = tmp_path_factory.mktemp("csv")
    splits = digits_splits()
    x, y = splits["train"]
    for i, part in enumerate(np.array_split(np.arange(len(y)), 3)):
        _write(out / f"digits-{i}.csv", x[part], y[part])
    _write(out / "digits-3.csv", *splits["val"])
    _write(out / "digits-4.csv", *splits["test"])
    return out


def _config(tmp: Path, data: dict, name: str = "csv_stream") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(f"extends: {ROOT / 'configs/digits_mlp.yaml'}\nname: {name}\n{TRAIN}\n"
                    + yaml.safe_dump({"data": {"batch_size": 64, **data}}))
    return path


def _data(shards: Path, **extra) -> dict:
    return {"source": "csv", "stream": True, "path": str(shards / "digits-*.csv"), "label": "digit",
            "shuffle_buffer": 500, **extra}


def test_training_from_csv_shards_reaches_the_in_memory_accuracy_and_eval_streams_exactly(shards, tmp_path):
    run = fit(load_config(_config(tmp_path, _data(shards))), FitOptions(run_dir=tmp_path / "run", quiet=True))
    assert run.metrics.data == {"train": 1149, "val": 288, "test": 360}  # the in-memory splits, shard by shard
    # tests/test_stream.py's in-memory run of this config (same examples, 3 epochs) reaches 0.93-0.96
    assert run.metrics.final["test"]["accuracy"] > 0.9
    info = yaml.safe_load((run.run.path / "data_info.json").read_text())
    assert info["streamed"]["files"]["test"] == [str(shards / "digits-4.csv")]
    check_eval_streams_exactly(run.run.path, run.metrics.final["test"]["accuracy"], n_samples=360)


def test_the_order_depends_only_on_seed_and_epoch_and_a_start_skips_exactly(shards, tmp_path):
    stream = build(load_config(_config(tmp_path, _data(shards))).data, seed=1).train
    check_order_and_skip(stream, batch_size=64, start=5)


def test_one_pipeline_covers_many_epochs_each_in_its_own_order(shards, tmp_path):
    stream = build(load_config(_config(tmp_path, _data(shards))).data, seed=1).train
    check_epochs_in_one_pipeline(stream, batch_size=64, start=5)


def test_split_random_holds_out_whole_shards_drawn_by_the_seed(shards, tmp_path):
    data = load_config(_config(tmp_path, _data(shards, split="random"))).data
    drawn = {seed: build(data, seed=seed) for seed in (1, 2, 3)}
    for streams in drawn.values():
        held = streams.test.files + streams.val.files
        assert len(streams.test.files) == len(streams.val.files) == 1 and len(streams.train.files) == 3
        assert sorted(streams.train.files + held) == sorted(str(p) for p in shards.glob("digits-*.csv"))
    assert len({streams.test.files for streams in drawn.values()}) > 1  # the seed draws them
    assert build(data, seed=2).test.files == drawn[2].test.files


def test_the_encoders_are_the_in_memory_csv_ones_fitted_on_the_training_shards(tmp_path):
    rows = ["size,color,flag,kind", "1.5,red,true,cat", "2,blue,false,dog", "3,red,true,dog", "4,green,false,cat"]
    (tmp_path / "all.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "s-0.csv").write_text("\n".join(rows[:3]) + "\n")
    (tmp_path / "s-1.csv").write_text("\n".join([rows[0], *rows[3:]]) + "\n")
    (tmp_path / "s-2.csv").write_text("\n".join([rows[0], "5,violet,true,cat"]) + "\n")  # the test shard
    keys = {"test_split": 0.34, "validation_split": 0}
    memory = build(load_config(_config(tmp_path, {"source": "csv", "path": str(tmp_path / "all.csv"),
                                                  "test_split": 0, "validation_split": 0})).data, seed=1).info
    streamed = build(load_config(_config(tmp_path, {"source": "csv", "stream": True,
                                                    "path": str(tmp_path / "s-*.csv"), **keys})).data, seed=1)
    assert streamed.info.feature_names == memory.feature_names == [
        "size", "color=blue", "color=green", "color=red", "flag=false", "flag=true"]
    assert streamed.info.class_names == memory.class_names == ["cat", "dog"]
    assert streamed.info.encoders == memory.encoders
    assert streamed.test.files == (str(tmp_path / "s-2.csv"),)
    x, y = streamed.test.arrays(None)
    np.testing.assert_array_equal(x, [[5, 0, 0, 0, 0, 1]])  # violet, seen only in the test shard: all zeros
    np.testing.assert_array_equal(y, [0])


def _fit_error(tmp_path, data: dict) -> str:
    return fit_error(tmp_path, _config(tmp_path, data))


def test_bad_shards_and_keys_exit_2_naming_the_file(shards, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(4):
        (bad / f"s-{i}.csv").write_text((shards / f"digits-{i}.csv").read_text())
    (bad / "s-1.csv").write_text((shards / "digits-1.csv").read_text().replace("p5,", "q5,", 1))
    assert f"error: {bad / 's-1.csv'}: no column 'p5' (data.features)" in _fit_error(
        tmp_path, _data(bad, path=str(bad / "s-*.csv")))
    lines = (shards / "digits-0.csv").read_text().splitlines()
    (bad / "s-1.csv").write_text("\n".join([lines[0], lines[1], ",".join(["1"] * 5 + [""] + ["2"] * 59)]) + "\n")
    assert f"error: {bad / 's-1.csv'} row 2: column 'p5' is empty" in _fit_error(
        tmp_path, _data(bad, path=str(bad / "s-*.csv")))
    (bad / "s-1.csv").write_text("\n".join([lines[0], lines[1], ",".join(["1"] * 5 + ["n/a"] + ["2"] * 59)]) + "\n")
    assert f"error: {bad / 's-1.csv'}: not a readable csv file (" in _fit_error(
        tmp_path, _data(bad, path=str(bad / "s-*.csv")))
    assert "data.stratify: a streamed csv holds out whole shards" in _fit_error(
        tmp_path, _data(bad, path=str(bad / "s-*.csv"), split="random", stratify=True))
    empty = tmp_path / "none-*.csv"
    assert f"data.path: '{empty}' matches no file" in _fit_error(tmp_path, _data(bad, path=str(empty)))
    one = _data(bad, path=str(bad / "s-0.csv"))
    assert ("data.test_split 0.2: data.path matches 1 csv shard(s) and a streamed csv holds out whole shards"
            in _fit_error(tmp_path, one))
    assert "shuffle_buffer and adapt_samples are read with stream: true only" in _fit_error(
        tmp_path, {**one, "stream": False})
