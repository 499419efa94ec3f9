"""``fmtrain data pack``: a source's splits as TFRecord shards, plus the ``data:`` block streaming them.

The splits are those ``fit`` would train on (``data.build`` with the config's seed: the same
train/val/test rows, labels encoded, csv columns one-hot encoded); an in-memory source is held as
arrays, a streamed table (``parquet``, csv shards with ``stream: true``) is read from its files a
block of rows at a time, so packing it needs no more memory than training from it. Each split
becomes shards named ``<split>-00000-of-0000N.tfrecord`` of ``tf.train.Example`` records, one per
example, in the split's order, written
through ``tf.io.gfile`` (so an object-store path TensorFlow supports works too). The block is
written as ``data.yaml`` next to the shards and returned.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fmtrain.config.yaml_marks import dump_yaml
from fmtrain.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fmtrain.config.schema import Config

LABEL = "label"
"""The label feature's name in the shards (``y`` when an input is already called ``label``)."""
BLOCK_FILE = "data.yaml"
BLOCK_ROWS = 8192
"""Examples of an in-memory split converted per block."""


@dataclass(frozen=True)
class Packed:
    """What :func:`pack` wrote."""

    block: dict[str, Any]
    """The ``data:`` section that streams the shards."""
    block_path: str
    shards: dict[str, list[str]]
    """Split → the shard files written."""
    counts: dict[str, int]


def pack(cfg: Config, out_dir: str, shards: int) -> Packed:
    """Write ``cfg.data``'s splits as TFRecord shards under ``out_dir`` (``shards`` for train, the
    held-out splits in proportion, at least one each).

    An in-memory source is built as ``fit`` builds it; a streamed table (``parquet``, ``csv`` with
    ``stream: true``) is checked and its encoders fitted as ``fit`` does, then read and written a block of
    rows at a time, so memory stays flat however large the files.

    Args:
        cfg: a config whose ``data`` is an in-memory source, ``parquet`` or ``csv`` with ``stream: true``.
        out_dir: an empty (or new) folder, or an object-store path TensorFlow supports.
        shards: training shards.

    Returns:
        The shards written, their example counts and the ``data:`` block that streams them.

    Raises:
        ConfigError: the source is TFRecord already, or ``shards`` is below 1.
        DataError: the data cannot be read, or ``out_dir`` holds shards already.
    """
    import tensorflow as tf

    from fmtrain import data as data_layer

    if shards < 1:
        raise ConfigError(f"--shards {shards}: give at least 1")
    if cfg.data.source == "tfrecord":
        raise ConfigError("data.source: 'tfrecord' streams already; pack reads an in-memory source, parquet or "
                          "csv (stream: true)")
    splits = data_layer.build(cfg.data, seed=cfg.seed)
    present = {name: split for name in ("train", "val", "test") if (split := getattr(splits, name)) is not None}
    out = out_dir.rstrip("/")
    tf.io.gfile.makedirs(out)
    existing = tf.io.gfile.glob(f"{out}/*.tfrecord")
    if existing:
        raise DataError(f"{existing[0]}: {out} holds shards already; pack into an empty folder")
    first_x, first_y = next(_blocks(splits.train))
    label = "y" if LABEL in first_x else LABEL
    features = {name: _spec(array, f"input '{name}'") for name, array in first_x.items()}
    features[label] = _label_spec(first_y, splits.info.task)
    written, counts = {}, {}
    for name, split in present.items():
        n_shards = shards if name == "train" else max(1, math.ceil(shards * len(split) / len(splits.train)))
        written[name] = _write(_blocks(split), len(split), f"{out}/{name}", n_shards, label)
        counts[name] = len(split)
    block: dict[str, Any] = {
        "source": "tfrecord",
        "files": {name: f"{out}/{name}-*.tfrecord" for name in written},
        "features": features,
        "label": label,
    }
    if splits.info.task == "classification" and splits.info.class_names:
        block["classes"] = list(splits.info.class_names)
    block["shuffle_buffer"] = min(10_000, len(splits.train))
    block["batch_size"] = cfg.data.batch_size
    block["shuffle"] = cfg.data.shuffle
    if cfg.data.task != "auto":
        block["task"] = cfg.data.task
    block_path = f"{out}/{BLOCK_FILE}"
    with tf.io.gfile.GFile(block_path, "w") as f:
        f.write(f"# Written by fmtrain data pack from {splits.info.source}; use as the data: section of a config.\n")
        f.write(dump_yaml({"data": block}))
    return Packed(block, block_path, written, counts)


def _blocks(split) -> Iterator[tuple[dict[str, Any], Any]]:
    """A split's examples in order, a block at a time: ``({name: inputs}, labels)``. A streamed split is read
    from its files through its ``encoded_batches`` (:class:`~fmtrain.data.parquet.TableStream`, and any
    other stream that offers it); arrays are sliced."""
    if hasattr(split, "encoded_batches"):
        for x, y in split.encoded_batches():
            yield {"x": x}, y
        return
    x = split.x if isinstance(split.x, dict) else {"x": split.x}
    for start in range(0, len(split), BLOCK_ROWS):
        yield {name: values[start:start + BLOCK_ROWS] for name, values in x.items()}, split.y[start:start + BLOCK_ROWS]


def _spec(array, what: str) -> dict[str, Any]:
    """Strings as a bytes_list; numbers as their raw bytes (``raw: true``, the cheapest to parse)."""
    import numpy as np

    array = np.asarray(array)
    shape = list(array.shape[1:])
    if array.dtype.kind in "OUS":
        return {"dtype": "string", "shape": shape}
    if array.dtype == np.uint8:
        return {"dtype": "uint8", "shape": shape, "raw": True}
    if array.dtype.kind in "iu":
        return {"dtype": "int32", "shape": shape, "raw": True}
    if array.dtype.kind in "fb":
        return {"dtype": "float32", "shape": shape, "raw": True}
    raise DataError(f"{what} has dtype {array.dtype}, which a TFRecord feature cannot hold")


def _label_spec(y, task: str) -> dict[str, Any]:
    import numpy as np

    return {"dtype": "int64" if task == "classification" else "float32", "shape": list(np.asarray(y).shape[1:])}


def _write(blocks: Iterator[tuple[dict[str, Any], Any]], n: int, prefix: str, n_shards: int,
           label: str) -> list[str]:
    """The ``n`` examples of ``blocks`` in order, split into ``n_shards`` contiguous shards."""
    import numpy as np
    import tensorflow as tf

    bounds = np.linspace(0, n, n_shards + 1).astype(int)
    paths = [f"{prefix}-{shard:05d}-of-{n_shards:05d}.tfrecord" for shard in range(n_shards)]
    shard, done = 0, 0
    writer = tf.io.TFRecordWriter(paths[0])
    try:
        for x, y in blocks:
            columns = {name: _raw_ready(np.asarray(array)) for name, array in x.items()}
            columns[label] = np.asarray(y)
            for i in range(len(columns[label])):
                while shard + 1 < n_shards and done >= bounds[shard + 1]:
                    writer.close()
                    shard += 1
                    writer = tf.io.TFRecordWriter(paths[shard])
                features = {name: _feature(values[i], raw=name != label and values.dtype.kind not in "OUS")
                            for name, values in columns.items()}
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
                done += 1
        while shard + 1 < n_shards:  # fewer examples than shards: the rest stay empty, as before
            writer.close()
            shard += 1
            writer = tf.io.TFRecordWriter(paths[shard])
    finally:
        writer.close()
    return paths


def _raw_ready(array):
    """Numbers in the dtype their spec names, little-endian, as ``raw: true`` reads them."""
    import numpy as np

    if array.dtype.kind in "OUS" or array.dtype == np.uint8:
        return array
    return array.astype("<i4" if array.dtype.kind in "iu" else "<f4")


def _feature(value, raw: bool = False):
    import numpy as np
    import tensorflow as tf

    value = np.asarray(value)
    if raw:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.tobytes()]))
    flat = value.reshape(-1)
    if value.dtype.kind in "OUS":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in flat]))
    if value.dtype.kind in "iub":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=flat.astype(np.int64).tolist()))
    return tf.train.Feature(float_list=tf.train.FloatList(value=flat.astype(np.float32).tolist()))
