"""``source: csv`` with ``stream: true``: csv shards (``path`` a glob or one file) streamed like Parquet.

The shards are read by pyarrow's streaming csv reader, a block at a time, through the machinery of
:mod:`fmtrain.data.parquet` (the same checks, encoders, order, resume and padded evaluation); the
in-memory csv path (:mod:`fmtrain.data.csv_npz`) is untouched. Column kinds come from the first
block of the first shard, as every later block and shard is then read: a number column is read as
floats (the label as integers when it holds integers), any other column — and every column listed
in ``categorical`` — as strings, which are one-hot encoded as in memory; ``true``/``false`` stay
strings, as in memory. Splits are whole shards: ``test_split`` and ``validation_split`` hold out
that share of the shards (at least one each), the last ones in name order (``split: last``) or a
draw seeded by ``seed`` (``split: random``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fmtrain.data.encoding import EncoderState
from fmtrain.data.parquet import TableSpec, TableStream, build_tables, open_file
from fmtrain.data.tfrecord import DEFAULT_ADAPT_SAMPLES, DEFAULT_SHUFFLE_BUFFER, Streams, expand_files
from fmtrain.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from fmtrain.data.csv_npz import CsvSource

BLOCK_BYTES = 1 << 20
"""Bytes of csv text parsed per batch."""


@dataclass(frozen=True)
class CsvFormat:
    """csv files read with the column types of the first training shard."""

    types: dict[str, pa.DataType] = field(default_factory=dict)
    what: str = "csv file"

    def columns(self, path: str) -> dict[str, pa.DataType]:
        schema = _open(path, self.types).schema
        return {name: self.types.get(name, kind) for name, kind in zip(schema.names, schema.types, strict=True)}

    def batches(self, path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        yield from _open(path, self.types, columns)


def _open(path: str, types: dict, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # Only an empty cell is missing, as in memory ("NA" is a category, "n/a" in a number column a mistake).
    convert = pcsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                  include_columns=columns or [])
    source = open_file(path) if "://" in path else path
    return pcsv.open_csv(source, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES), convert_options=convert,
                         memory_pool=pa.default_memory_pool())


def build(cfg: CsvSource, *, seed: int, encoders: EncoderState) -> Streams:
    """The shards ``cfg.path`` names, split by shard, checked and streamed: :func:`build_tables`.

    Raises:
        DataError: no shard matches, too few shards for the held-out splits, or what
            :func:`build_tables` refuses, naming the file.
    """
    import pyarrow as pa

    files = expand_files(cfg.path, "data.path", "csv files")
    split = _split_files(cfg, files, seed)
    first = split["train"][0]
    try:
        inferred = CsvFormat().columns(first)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{first}: not a readable csv file ({str(exc).strip().splitlines()[0]})") from None
    label = cfg.label if cfg.label is not None else list(inferred)[-1]
    forced = set(cfg.categorical or []) | set(encoders.categories or {})
    for name in cfg.categorical or []:
        if name not in inferred or name == label:
            raise DataError(f"{first}: data.categorical lists '{name}', which is not a feature column")
    types = {name: _read_as(kind, name == label, name in forced) for name, kind in inferred.items()}
    spec = TableSpec(CsvFormat(types), split, label, cfg.features, cfg.task,
                     cfg.shuffle_buffer or DEFAULT_SHUFFLE_BUFFER, cfg.adapt_samples or DEFAULT_ADAPT_SAMPLES,
                     source="csv", categorical=sorted(forced))
    return build_tables(spec, encoders)


def predict_stream(files: list[str], encoders: EncoderState) -> TableStream:
    """A predict-only stream of csv ``files`` encoded with a trained run's ``encoders``: columns read with
    the types training read them with (numbers as floats, the categorical columns as strings); a label
    column in the files is ignored.

    Args:
        files: the csv files, in the order their rows are predicted.
        encoders: the run's learned state (its feature columns and their categories).

    Returns:
        A :class:`~fmtrain.data.parquet.TableStream` whose ``feature_batches`` the model takes.

    Raises:
        DataError: a file that cannot be read or lacks a trained feature column, naming it.
    """
    import pyarrow as pa

    try:
        inferred = CsvFormat().columns(files[0])
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{files[0]}: not a readable csv file ({str(exc).strip().splitlines()[0]})") from None
    forced = set(encoders.categories or {})
    types = {name: _read_as(kind, False, name in forced) for name, kind in inferred.items()}
    return TableStream.unlabelled(files, CsvFormat(types), encoders)


def _read_as(kind: pa.DataType, label: bool, categorical: bool) -> pa.DataType:
    import pyarrow as pa

    if categorical or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return pa.string()  # as in memory: a column that is not numbers is categories (true/false too)
    return pa.int64() if label and pa.types.is_integer(kind) else pa.float64()


def _split_files(cfg: CsvSource, files: list[str], seed: int) -> dict[str, list[str]]:
    """Whole shards held out for test and validation: the last in name order, or a seeded draw."""
    import numpy as np

    if cfg.stratify:
        raise DataError("data.stratify: a streamed csv holds out whole shards, which cannot keep class "
                        "proportions; remove stratify or stream: true")
    order = list(files)
    if cfg.split == "random":
        order = [files[i] for i in np.random.default_rng([seed]).permutation(len(files))]
    held = {}
    for split, fraction, key in (("test", cfg.test_split, "data.test_split"),
                                 ("val", cfg.validation_split, "data.validation_split")):
        if fraction > 0:
            count = max(1, round(fraction * len(files)))
            if count >= len(order):
                raise DataError(f"{key} {fraction:g}: data.path matches {len(files)} csv shard(s) and a streamed csv "
                                f"holds out whole shards, leaving none to train on; give more shards or set {key}: 0")
            order, held[split] = order[:-count], sorted(order[-count:])
    return {"train": sorted(order), **held}


__all__ = ["CsvFormat", "build", "predict_stream"]
