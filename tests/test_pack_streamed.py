"""`fmtrain data pack` from a streamed table (Parquet files, csv shards with ``stream: true``): read a block of rows
at a time, written as TFRecord shards holding the very examples the table streams, in order; a run trains from them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tf

tf = pytest.importorskip("tensorflow")
pq = pytest.importorskip("pyarrow.parquet")

from test_predict import invoke  # noqa: E402
from test_predict_stream import _table_shards  # noqa: E402

from fmtrain.config import load_config  # noqa: E402
from fmtrain.data import build  # noqa: E402

SPLIT_ROWS = {"train": 96, "val": 32, "test": 32}


def _parquet_config(tmp: Path) -> Path:
    """The pets table as Parquet: 3 training files, one validation and one test file of 32 rows each."""
    import pyarrow.csv as pcsv

    folder, paths = _table_shards(tmp)
    for path in paths:
        pq.write_table(pcsv.read_csv(path), path.with_suffix(".parquet"), row_group_size=10)
    (tmp / "c.yaml").write_text(
        f"name: pets\nseed: 3\ndata: {{source: parquet, label: kind, batch_size: 16, files: "
        f"{{train: '{folder}/pets-[012].parquet', val: '{folder}/pets-3.parquet', test: '{folder}/pets-4.parquet'}}}}\n"
        "model: {type: mlp, hidden_units: [8]}\ntrain: {epochs: 1, jit_compile: false}\n")
    return tmp / "c.yaml"


def _csv_config(tmp: Path) -> Path:
    """The pets table as 5 csv shards streamed (``stream: true``): the last two held out for val and test."""
    folder, _ = _table_shards(tmp)
    (tmp / "c.yaml").write_text(
        f"name: pets\nseed: 3\ndata: {{source: csv, stream: true, path: '{folder}/pets-*.csv', label: kind, "
        "validation_split: 0.2, test_split: 0.2, batch_size: 16}\nmodel: {type: mlp, hidden_units: [8]}\n"
        "train: {epochs: 1, jit_compile: false}\n")
    return tmp / "c.yaml"


def _pack(config: Path, out: Path, shards: int = 2) -> dict:
    result = invoke("data", "pack", config, out, "--shards", shards, "--quiet")
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)["data"]


def _packed_config(tmp: Path, block: dict) -> Path:
    path = tmp / "packed.yaml"
    path.write_text("name: packed\nseed: 3\nmodel: {type: mlp, hidden_units: [8]}\n"
                    "train: {epochs: 1, jit_compile: false}\n" + yaml.safe_dump({"data": block}))
    return path


def _in_file_order(stream):
    """A streamed split's examples shard after shard (each shard in its own order): ``(x, y)``."""
    parts = [replace(stream, files=(path,)).arrays(None) for path in stream.files]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


@pytest.mark.parametrize("make_config", [_parquet_config, _csv_config], ids=["parquet", "csv"])
def test_pack_writes_the_tables_examples_in_order_a_block_at_a_time(make_config, tmp_path, monkeypatch):
    import fmtrain.data.csv_stream as csv_stream
    import fmtrain.data.parquet as parquet

    config = make_config(tmp_path)
    source = build(load_config(config).data, seed=3)
    # Small blocks, and no split may be read whole: pack must go block by block.
    monkeypatch.setattr(parquet, "READ_ROWS", 10)
    monkeypatch.setattr(csv_stream, "BLOCK_BYTES", 256)
    blocks = []
    encoded = parquet.TableStream.encoded_batches

    def counted(self):
        for x, y in encoded(self):
            blocks.append(len(y))
            yield x, y

    monkeypatch.setattr(parquet.TableStream, "encoded_batches", counted)
    monkeypatch.setattr(parquet.TableStream, "arrays", lambda *a: pytest.fail("pack read a split whole"))
    block = _pack(config, tmp_path / "out")
    monkeypatch.undo()
    assert sum(blocks[1:]) == sum(SPLIT_ROWS.values()) and max(blocks) < 32  # the first: read for the specs

    width = source.info.input_shape[0]
    assert block["features"] == {"x": {"dtype": "float32", "shape": [width], "raw": True},
                                 "label": {"dtype": "int64", "shape": []}}
    assert block["classes"] == ["cat", "dog", "fox"] == source.info.class_names
    packed = build(load_config(_packed_config(tmp_path, block)).data, seed=3)
    for split in ("train", "val", "test"):
        streamed, shards = getattr(source, split), getattr(packed, split)
        assert len(streamed) == len(shards) == SPLIT_ROWS[split]
        x, y = _in_file_order(streamed)
        packed_x, packed_y = _in_file_order(shards)
        np.testing.assert_array_equal(packed_x, x)  # the same examples, encoded alike, in the same order
        np.testing.assert_array_equal(packed_y, y)
    assert len(packed.train.files) == 2 and [len(replace(packed.train, files=(f,)).arrays(None)[1])
                                             for f in packed.train.files] == [48, 48]


def test_a_run_trains_from_shards_packed_from_parquet(tmp_path):
    config = _parquet_config(tmp_path)
    block = _pack(config, tmp_path / "out", shards=3)
    result = invoke("fit", _packed_config(tmp_path, block), "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == SPLIT_ROWS
    info = json.loads((tmp_path / "run" / "data_info.json").read_text())
    assert info["class_names"] == ["cat", "dog", "fox"] and info["streamed"]["counts"] == SPLIT_ROWS
    assert sorted(p.name for p in (tmp_path / "out").glob("train-*")) == [f"train-0000{i}-of-00003.tfrecord"
                                                                          for i in range(3)]



def test_a_streamed_image_folder_packs_to_the_shards_its_in_memory_form_packs_to(tmp_path, monkeypatch):
    """`data pack` reads a `stream: true` folder through its stream, a block at a time; the shards hold the
    examples the in-memory folder packs to, in the same order."""
    from test_stream_folders import _small

    from fmtrain.data.folder_stream import FolderStream

    monkeypatch.setattr(FolderStream, "arrays", lambda *a: pytest.fail("pack read a split whole"))
    root = _small(tmp_path / "folder")
    blocks = {}
    for stream in (False, True):
        config = tmp_path / f"stream-{stream}.yaml"
        config.write_text(yaml.safe_dump({"name": "f", "seed": 3, "model": {"type": "mlp"}, "data": {
            "source": "image_folder", "path": str(root), "test_split": 0.25, "split": "random", "stream": stream}}))
        blocks[stream] = _pack(config, tmp_path / f"out-{stream}")
    monkeypatch.undo()
    assert {k: v for k, v in blocks[True].items() if k != "files"} == \
        {k: v for k, v in blocks[False].items() if k != "files"}
    memory, streamed = (build(load_config(_packed_config(tmp_path, blocks[s])).data, seed=3) for s in (False, True))
    for split in ("train", "test"):
        for a, b in zip(_in_file_order(getattr(memory, split)), _in_file_order(getattr(streamed, split)), strict=True):
            np.testing.assert_array_equal(a, b)
        assert len(getattr(streamed, split)) == {"train": 9, "test": 3}[split]
