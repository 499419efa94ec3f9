"""The streamed ``parquet`` source: digits written as Parquet files train as in memory, resume exactly,
fit their encoders on the training files only, and bad files stop ``fit`` before training, naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from stream_checks import (  # noqa: E402
    check_epochs_in_one_pipeline,
    check_eval_streams_exactly,
    check_order_and_skip,
    check_resume_ends_equal,
    digits_splits,
    fit_error,
)

from fmtrain.config import load_config  # noqa: E402
from fmtrain.data import build  # noqa: E402
from fmtrain.errors import DataError  # noqa: E402
from fmtrain.fit import FitOptions, fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ("train: {epochs: 3, early_stopping: null, jit_compile: false, deterministic: true, "
         "checkpoint: {keep_last: 50, every_steps: 8}}")
PIXELS = [f"p{i}" for i in range(64)]


def _table(x: np.ndarray, y: np.ndarray) -> pa.Table:
    columns = {name: x[:, i].astype(np.float32) for i, name in enumerate(PIXELS)}
    return pa.table({**columns, "digit": y.astype(np.int64)})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """digits_mlp.yaml's in-memory splits as Parquet: 3 training files of row groups of 100 rows."""
    out = tmp_path_factory.mktemp("parquet")
    splits = digits_splits()
    x, y = splits["train"]
    for i, part in enumerate(np.array_split(np.arange(len(y)), 3)):
        pq.write_table(_table(x[part], y[part]), out / f"train-{i}.parquet", row_group_size=100)
    for split in ("val", "test"):
        pq.write_table(_table(*splits[split]), out / f"{split}.parquet")
    return out


def _data(files: Path, **extra) -> dict:
    return {"source": "parquet", "label": "digit", "batch_size": 64, "shuffle_buffer": 500,
            "files": {"train": str(files / "train-*.parquet"), "val": str(files / "val.parquet"),
                      "test": str(files / "test.parquet")}, **extra}


def _config(tmp: Path, data: dict, name: str = "parquet", extra: str = TRAIN) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(f"extends: {ROOT / 'configs/digits_mlp.yaml'}\nname: {name}\n{extra}\n"
                    + yaml.safe_dump({"data": data}))
    return path


@pytest.fixture(scope="module")
def parquet_run(files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = _config(folder, _data(files))
    return config, fit(load_config(config), FitOptions(run_dir=folder / "run", quiet=True))


def test_training_from_parquet_reaches_the_in_memory_accuracy_and_eval_streams_exactly(parquet_run, tmp_path):
    config, run = parquet_run
    assert run.metrics.data == {"train": 1149, "val": 288, "test": 360}  # every row of every file, once
    memory = fit(load_config(_config(tmp_path, {"source": "digits", "batch_size": 64}, "memory")),
                 FitOptions(run_dir=tmp_path / "m", quiet=True))
    # The same examples in another order: the same accuracy within run noise.
    assert run.metrics.final["test"]["accuracy"] > 0.9
    assert abs(run.metrics.final["test"]["accuracy"] - memory.metrics.final["test"]["accuracy"]) < 0.04
    info = yaml.safe_load((run.run.path / "data_info.json").read_text())
    assert info["input_shape"] == [64] and info["class_names"] == [str(i) for i in range(10)]
    assert info["streamed"]["counts"] == {"train": 1149, "val": 288, "test": 360}
    assert info["encoders"]["columns"] == PIXELS and info["encoders"]["categories"] == {}

    # 360 rows: the last batch partial
    check_eval_streams_exactly(run.run.path, run.metrics.final["test"]["accuracy"], n_samples=360)


def test_the_order_depends_only_on_seed_and_epoch_and_a_start_skips_exactly(files, tmp_path):
    stream = build(load_config(_config(tmp_path, _data(files))).data, seed=1).train
    check_order_and_skip(stream, batch_size=64, start=7)


def test_one_pipeline_covers_many_epochs_each_in_its_own_order(files, tmp_path):
    stream = build(load_config(_config(tmp_path, _data(files))).data, seed=1).train
    check_epochs_in_one_pipeline(stream, batch_size=64, start=7)


def test_a_parquet_run_stopped_mid_epoch_and_resumed_ends_equal_to_the_uninterrupted_one(parquet_run, tmp_path):
    config, whole = parquet_run
    check_resume_ends_equal(load_config(config), whole, tmp_path / "run", stop_at=26, steps=54)  # 3 epochs of 18


def test_categories_and_labels_are_fitted_on_the_training_files_only(tmp_path):
    pq.write_table(pa.table({"size": [1.0, 2.0, 3.0, 4.0], "city": ["b", "a", "b", "a"],
                             "kind": ["cat", "dog", "dog", "cat"]}), tmp_path / "train.parquet", row_group_size=3)
    pq.write_table(pa.table({"size": [5.0, 6.0], "city": ["only_in_val", "a"], "kind": ["dog", "cat"]}),
                   tmp_path / "val.parquet")
    cfg = load_config(_config(tmp_path, {"source": "parquet", "label": "kind", "files": {  # a URL: via tf.io.gfile
        "train": f"file://{tmp_path / 'train.parquet'}", "val": str(tmp_path / "val.parquet")}}))
    streams = build(cfg.data, seed=1)
    assert streams.info.feature_names == ["size", "city=a", "city=b"]
    assert streams.info.class_names == ["cat", "dog"] and streams.info.task == "classification"
    x, y = streams.val.arrays(None)
    np.testing.assert_array_equal(x, [[5, 0, 0], [6, 1, 0]])  # a city unseen in training: all zeros
    np.testing.assert_array_equal(y, [1, 0])
    x, y = streams.train.arrays(None)  # across row groups, in file order
    np.testing.assert_array_equal(x[:, 0], [1, 2, 3, 4]) and np.testing.assert_array_equal(y, [0, 1, 1, 0])

    pq.write_table(pa.table({"size": [5.0], "city": ["a"], "kind": ["bird"]}), tmp_path / "val.parquet")
    with pytest.raises(DataError, match=rf"{tmp_path / 'val.parquet'} row 1: label 'bird' is not one of the 2 "
                                        "classes seen in training"):
        build(cfg.data, seed=1)


def _fit_error(tmp_path, data: dict) -> str:
    return fit_error(tmp_path, _config(tmp_path, data))


def test_a_missing_column_an_empty_glob_an_unreadable_file_and_a_null_exit_2_naming_the_file(files, tmp_path):
    second = files / "train-1.parquet"
    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pq.read_table(second).drop_columns(["p5"]), narrow)
    data = _data(files)
    data["files"]["train"] = [str(files / "train-0.parquet"), str(narrow)]
    assert f"error: {narrow}: no column 'p5' (data.features)" in _fit_error(tmp_path, data)
    assert (f"error: {files / 'train-0.parquet'}: no column 'p99' (data.features)"
            in _fit_error(tmp_path, {**_data(files), "features": ["p1", "p99"]}))
    assert "no label column 'label' (data.label); columns are" in _fit_error(tmp_path, {**_data(files),
                                                                                         "label": "label"})
    empty = {**_data(files), "files": {"train": str(tmp_path / "none-*.parquet")}}
    assert f"data.files.train: '{tmp_path / 'none-*.parquet'}' matches no file" in _fit_error(tmp_path, empty)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(second.read_bytes()[:3000])
    assert f"error: {broken}: not a readable Parquet file" in _fit_error(
        tmp_path, {**_data(files), "files": {"train": str(broken)}})
    holes = tmp_path / "holes.parquet"
    pq.write_table(pa.table({"a": [1.0, None, 3.0], "digit": [0, 1, 0]}), holes)
    assert f"error: {holes} row 2: column 'a' is empty" in _fit_error(
        tmp_path, {**_data(files), "files": {"train": str(holes)}})
