"""``fmtrain data pack``: an in-memory source's splits as TFRecord shards, plus the ``data:`` block streaming them.

The splits are those ``fit`` would train on (``data.build`` with the config's seed: the same
train/val/test rows, labels encoded, csv columns one-hot encoded); each becomes shards named
``<split>-00000-of-0000N.tfrecord`` of ``tf.train.Example`` records, one per example, written
through ``tf.io.gfile`` (so an object-store path TensorFlow supports works too). The block is
written as ``data.yaml`` next to the shards and returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fmtrain.config.yaml_marks import dump_yaml
from fmtrain.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fmtrain.config.schema import Config

LABEL = "label"
"""The label feature's name in the shards (``y`` when an input is already called ``label``)."""
BLOCK_FILE = "data.yaml"


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

    Raises:
        ConfigError: the source already streams, or ``shards`` is below 1.
        DataError: the data cannot be read, or ``out_dir`` holds shards already.
    """
    import tensorflow as tf

    from fmtrain import data as data_layer

    if shards < 1:
        raise ConfigError(f"--shards {shards}: give at least 1")
    if data_layer.streams(cfg.data):
        raise ConfigError(f"data.source: '{cfg.data.source}' streams already; pack reads an in-memory source")
    splits = data_layer.build(cfg.data, seed=cfg.seed)
    present = {name: split for name in ("train", "val", "test") if (split := getattr(splits, name)) is not None}
    out = out_dir.rstrip("/")
    tf.io.gfile.makedirs(out)
    existing = tf.io.gfile.glob(f"{out}/*.tfrecord")
    if existing:
        raise DataError(f"{existing[0]}: {out} holds shards already; pack into an empty folder")
    x = splits.train.x
    inputs = x if isinstance(x, dict) else {"x": x}
    label = "y" if LABEL in inputs else LABEL
    features = {name: _spec(array, f"input '{name}'") for name, array in inputs.items()}
    features[label] = _label_spec(splits.train.y, splits.info.task)
    written, counts = {}, {}
    for name, split in present.items():
        n_shards = shards if name == "train" else max(1, math.ceil(shards * len(split) / len(splits.train)))
        written[name] = _write(split, f"{out}/{name}", n_shards, label)
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


def _write(split, prefix: str, n_shards: int, label: str) -> list[str]:
    """Examples in order, split into ``n_shards`` contiguous shards."""
    import numpy as np
    import tensorflow as tf

    x = split.x if isinstance(split.x, dict) else {"x": split.x}
    columns = {name: _raw_ready(np.asarray(array)) for name, array in x.items()}
    columns[label] = np.asarray(split.y)
    n = len(split)
    paths = []
    bounds = np.linspace(0, n, n_shards + 1).astype(int)
    for shard in range(n_shards):
        path = f"{prefix}-{shard:05d}-of-{n_shards:05d}.tfrecord"
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(bounds[shard], bounds[shard + 1]):
                features = {name: _feature(values[i], raw=name != label and values.dtype.kind not in "OUS")
                            for name, values in columns.items()}
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
        paths.append(path)
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
