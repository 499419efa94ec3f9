"""The ``parquet`` source, and what every streamed table shares (sharded csv reads through it too).

``files`` names the Parquet files of each split (a glob or a list, paths through ``tf.io.gfile``),
``features`` the columns read (default: every column but the label) and ``label`` the label column.
Numeric and boolean columns become float32 features; string columns are one-hot encoded by the
:class:`~fmtrain.data.tabular.ColumnEncoder` the in-memory csv path uses, and the label is encoded by
:func:`~fmtrain.data.labels.encode_labels`, so a table reads alike from csv in memory, Parquet or
csv shards.

:func:`build_tables` reads every file of every split once before training (pyarrow, a batch of rows
at a time, only the columns needed): it checks that each file reads and holds the columns with the
kind of the first training file, that no cell is null or a non-finite number, counts the rows, and
collects the categories and label values of the *training* files, which fit the encoders (all of
them, not a sample; val/test labels are then checked against them). It returns
:class:`~fmtrain.data.tfrecord.Streams` of :class:`TableStream` splits: rows are read a batch at a
time by a generator inside tf.data (Python per batch, not per row), encoded in numpy, and then
follow the tfrecord streams' order (file order from (seed, epoch), blocks of ``shuffle_buffer`` rows
permuted by stateless keys), resume by skipping, and padded evaluation.

pyarrow and TensorFlow are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from pydantic import Field, field_validator

from fmtrain.data.encoding import EncoderState
from fmtrain.data.labels import Labels, encode_labels
from fmtrain.data.sources import SOURCES, Loaded, SourceConfig
from fmtrain.data.tabular import ColumnEncoder
from fmtrain.data.tfrecord import (
    DEFAULT_ADAPT_SAMPLES,
    DEFAULT_SHUFFLE_BUFFER,
    LabelShape,
    ShardedStream,
    SplitFiles,
    Streams,
    check_adapt_samples,
    expand_files,
)
from fmtrain.errors import DataError
from fmtrain.registry import describe_choices, did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

READ_ROWS = 8192
"""Rows read from a file per batch (while checking, and while streaming)."""


class ParquetSource(SourceConfig):
    """Parquet files per split, read in batches of rows and streamed through tf.data (data larger than memory)."""

    source: Literal["parquet"] = "parquet"
    """parquet: Parquet files, streamed."""
    files: SplitFiles
    """Parquet files per split: {train: GLOB or [FILES], val: ..., test: ...}; validation_split/test_split are
    not used."""
    label: str
    """The label column (strings or integers → classification, floats → regression)."""
    features: list[str] | None = None
    """Feature columns (default: every column but the label): numbers and booleans → float32, strings → one-hot
    over the categories of the training files."""
    shuffle_buffer: int = Field(DEFAULT_SHUFFLE_BUFFER, ge=1)
    """Training rows permuted together (in blocks, after the seeded file order; memory grows with it)."""
    adapt_samples: int | Literal["all"] = DEFAULT_ADAPT_SAMPLES
    """Training rows (the first, in file order) that adapting preprocessing steps (standardize, ...) are fitted
    on; `all` reads every training row into memory. Categories and labels are always read from every file."""

    streams: ClassVar[bool] = True

    @field_validator("adapt_samples")
    @classmethod
    def _positive(cls, value):
        return check_adapt_samples(value)

    def build_streams(self, *, seed: int, encoders: EncoderState) -> Streams:
        """Check every file and fit the encoders on the training files: :func:`build_tables`."""
        splits = {split: expand_files(patterns, f"data.files.{split}", "Parquet files")
                  for split in ("train", "val", "test") if (patterns := getattr(self.files, split)) is not None}
        return build_tables(TableSpec(PARQUET, splits, self.label, self.features, self.task, self.shuffle_buffer,
                                      self.adapt_samples, source="parquet"), encoders)


@SOURCES.register("parquet", params=ParquetSource)
def load_parquet(cfg: ParquetSource, saved: EncoderState) -> Loaded:
    """Parquet files per split (data.files), columns data.features and data.label, streamed by tf.data."""
    raise DataError("source 'parquet' streams; fmtrain.data.build returns its Streams")  # build() dispatches


# --------------------------------------------------------------------------- formats


class TableFormat(Protocol):
    """How a kind of file is read as columns (Parquet here, csv in :mod:`fmtrain.data.csv_stream`)."""

    what: str
    """The files in messages, e.g. ``"Parquet file"``."""

    def columns(self, path: str) -> dict[str, pa.DataType]:
        """Column name → type, from the file's schema (or its first block)."""

    def batches(self, path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """The file's rows, ``columns`` only, a batch of about :data:`READ_ROWS` at a time."""


@dataclass(frozen=True)
class ParquetFormat:
    what: str = "Parquet file"

    def columns(self, path: str) -> dict[str, pa.DataType]:
        import pyarrow.parquet as pq

        with open_file(path) as handle:
            schema = pq.read_schema(handle)
        return dict(zip(schema.names, schema.types, strict=True))

    def batches(self, path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        with open_file(path) as handle:
            yield from pq.ParquetFile(handle).iter_batches(batch_size=READ_ROWS, columns=columns)


PARQUET = ParquetFormat()


def open_file(path: str):
    """A local file as pyarrow opens it; a URL (gs://, s3://, ...) through ``tf.io.gfile``."""
    import pyarrow as pa

    if "://" not in path:
        return pa.OSFile(path, "rb")
    import tensorflow as tf

    return pa.PythonFile(_GFileReader(tf.io.gfile.GFile(path, "rb")), mode="r")


class _GFileReader:
    """What ``pyarrow.PythonFile`` needs of a file (``tf.io.gfile.GFile`` has no ``closed``)."""

    def __init__(self, handle):
        self.handle, self.closed = handle, False

    def read(self, size: int = -1) -> bytes:
        return self.handle.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()
        self.closed = True


# --------------------------------------------------------------------------- encoding rows


@dataclass(frozen=True)
class TableEncoding:
    """What a table stream reads and how a batch of rows becomes ``(x, y)``: fitted on the training files."""

    format: TableFormat
    features: list[str]
    label: str | None
    """None: predict-only (:meth:`TableStream.unlabelled`); a label column in the files is not read."""
    encoder: ColumnEncoder
    """Fitted: numeric columns pass, categorical ones are one-hot over the training categories."""
    labels: EncoderState
    """The label state (task, classes) every batch is encoded with."""

    @property
    def read(self) -> list[str]:
        return self.features if self.label is None else [*self.features, self.label]

    @property
    def width(self) -> int:
        return len(self.encoder.feature_names)

    @property
    def classification(self) -> bool:
        return self.labels.task == "classification"

    def encode(self, batch: pa.RecordBatch, where: Callable[[int], str]) -> tuple[np.ndarray, np.ndarray]:
        """A batch of rows → float32 features and the encoded labels (int32 ids or float32 targets)."""
        import numpy as np

        x = self.encode_features(batch)
        if self.label is None:  # predict-only: zeros keep the (x, y) shape every pipeline expects
            return x, np.zeros(len(x), np.int32 if self.classification else np.float32)
        return x, self.encode_labels(_values(batch.column(self.label)), where)

    def encode_features(self, batch: pa.RecordBatch) -> np.ndarray:
        """A batch of rows → float32 features (the fitted encoder's columns)."""
        return self.encoder.transform({name: _values(batch.column(name)) for name in self.features})

    def encode_labels(self, values: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
        return encode_batch_labels(values, self.labels, where, f"label column '{self.label}'")


def encode_batch_labels(values: np.ndarray, state: EncoderState, where: Callable[[int], str], name: str) -> np.ndarray:
    """:func:`encode_labels` with a fitted state, run on a batch's distinct values (Python per value, not per row)."""
    import numpy as np

    if values.dtype.kind == "f" and state.task == "regression":
        return encode_labels(values, task="regression", saved=state, where=where, name=name).y
    distinct, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    return encode_labels(distinct, task=state.task or "auto", saved=state, where=lambda i: where(int(first[i])),
                         name=name).y[inverse.reshape(-1)]


def _values(column: pa.Array) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    values = column.to_numpy(zero_copy_only=False)
    return values.astype(str) if values.dtype == object else values


# --------------------------------------------------------------------------- streams


@dataclass(frozen=True)
class TableStream(ShardedStream):
    """One split's files of a streamed table (Parquet, or csv shards) and how to turn them into batches."""

    files: tuple[str, ...]
    count: int
    encoding: TableEncoding
    shuffle_buffer: int
    limit: int | None = None
    """Only the first ``limit`` rows in file order (``--smoke``)."""
    labels: LabelShape | None = None

    def _records(self, files):
        """Every row of ``files`` (file names as a string tensor: one epoch's order, possibly inside a
        pipeline that covers several), read by pyarrow in Python, encoded batch by batch."""
        import tensorflow as tf

        encoding = self.encoding

        def generate(paths):
            for name in paths:
                path = name.decode()
                done = 0
                for batch in encoding.format.batches(path, encoding.read):
                    x, y = encoding.encode(batch, _where(path, done))
                    done += batch.num_rows
                    yield {"x": x, "y": y}

        signature = {"x": tf.TensorSpec([None, encoding.width], tf.float32),
                     "y": tf.TensorSpec([None], tf.int32 if encoding.classification else tf.float32)}
        records = tf.data.Dataset.from_generator(generate, args=(files,), output_signature=signature).unbatch()
        return records.take(self.limit) if self.limit is not None else records

    def _parse_raw(self, batch):
        return batch["x"], batch["y"]

    @classmethod
    def unlabelled(cls, files: list[str], fmt: TableFormat, encoders: EncoderState) -> TableStream:
        """A predict-only stream of ``files``, encoded with a trained run's ``encoders`` (its columns and
        categories); a label column in the files is ignored.

        Each file's columns are checked here (from its schema, or its first block), so a file without
        a trained column is named before anything runs; its count stays 0 (no pass is made to count).

        Raises:
            DataError: a file that cannot be read or lacks a trained feature column, naming it.
        """
        features = list(encoders.columns or [])
        categorical = list(encoders.categories or {})
        for path in files:
            kinds = _kinds(fmt, path)
            for name in features:
                if name not in kinds:
                    raise DataError(f"{path}: no column '{name}' (a feature the run was trained on)"
                                    f"{did_you_mean(name, kinds)}; columns are {describe_choices(kinds)}")
                if name not in categorical and kinds[name] not in ("float", "int", "bool"):
                    raise DataError(f"{path}: column '{name}' holds {kinds[name]} values but the run was trained "
                                    "on numbers in it")
        encoding = TableEncoding(fmt, features, None, ColumnEncoder(features, categorical, encoders.categories),
                                 encoders)
        return cls(tuple(files), 0, encoding, DEFAULT_SHUFFLE_BUFFER)

    def encoded_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every row once, file after file in the order of ``files``: ``(x, y)`` per block read (about
        :data:`READ_ROWS` rows), checked (no empty cell, finite numbers) and encoded; y is zeros when
        unlabelled. Python per block, no tf.data: what ``fmtrain predict`` and ``fmtrain data pack`` read.

        Raises:
            DataError: a file that cannot be read, an empty cell or a non-finite number, naming file and row.
        """
        import pyarrow as pa

        encoding = self.encoding
        expected = {name: "string" if name in (encoding.encoder.categories or {}) else "float"
                    for name in encoding.features}
        if encoding.label is not None:
            expected[encoding.label] = "string"  # nulls only: its values are checked as they are encoded
        for path in self.files:
            done = 0
            try:
                for batch in encoding.format.batches(path, encoding.read):
                    _check_batch(batch, path, done, expected)
                    yield encoding.encode(batch, _where(path, done))
                    done += batch.num_rows
            except (pa.ArrowException, OSError) as exc:
                raise DataError(f"{path}: not a readable {encoding.format.what} ({_first_line(exc)})") from None

    def feature_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """The encoded features of every row once, in the order of :meth:`encoded_batches`, as float32
        batches of ``batch_size`` (the last one shorter): what ``fmtrain predict`` feeds the model.

        Raises:
            DataError: as :meth:`encoded_batches`.
        """
        import numpy as np

        pending: list[np.ndarray] = []
        held = 0
        for x, _ in self.encoded_batches():
            pending.append(x)
            held += len(x)
            if held >= batch_size:
                rows = np.concatenate(pending)
                start = 0
                while held - start >= batch_size:
                    yield rows[start:start + batch_size]
                    start += batch_size
                pending, held = [rows[start:]], held - start
        if held:
            yield np.concatenate(pending)


def _where(path: str, offset: int) -> Callable[[int], str]:
    return lambda i: f"{path} row {offset + i + 1}"


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class TableSpec:
    """A streamed table as a source config gives it: the files of each split and the columns to read."""

    format: TableFormat
    files: dict[str, list[str]]
    """split → files (train always)."""
    label: str
    features: list[str] | None
    task: str
    shuffle_buffer: int
    adapt_samples: int | str
    source: str
    categorical: list[str] | None = None
    """Columns one-hot encoded whatever their type (csv: data.categorical); default the string columns."""


@dataclass
class _Scan:
    rows: int = 0
    categories: dict[str, set] | None = None
    label_rows: dict | None = None
    """Each distinct training label → where it was first seen."""
    label_sample: np.ndarray | None = None


def build_tables(spec: TableSpec, encoders: EncoderState) -> Streams:
    """Check every file of every split, fit the encoders on the training files; the streams and what they hold.

    Raises:
        DataError: a file that cannot be read, lacks a column or holds another kind of values in one
            than the first training file, a null or non-finite cell, a label that does not fit the
            training labels — each naming the file (and row).
    """
    from fmtrain.data import DataInfo

    train_files = spec.files["train"]
    first = train_files[0]
    kinds = _kinds(spec.format, first)
    label = spec.label
    if label not in kinds:
        raise DataError(f"{first}: no label column '{label}' (data.label){did_you_mean(label, kinds)}; "
                        f"columns are {describe_choices(kinds)}")
    if encoders.columns is not None:  # a trained model fixes its columns and which are categorical
        features, categorical = list(encoders.columns), list(encoders.categories or {})
    else:
        features = spec.features if spec.features is not None else [c for c in kinds if c != label]
        categorical = [c for c in features if kinds.get(c) == "string" or c in (spec.categorical or [])]
    if label in features:
        raise DataError(f"{first}: column '{label}' is both the label (data.label) and a feature (data.features); "
                        "remove it from data.features")
    if not features:
        raise DataError(f"{first}: no feature columns besides the label '{label}'; add columns or set data.features")
    for name in features:
        if name not in kinds:
            raise DataError(f"{first}: no column '{name}' (data.features){did_you_mean(name, kinds)}; "
                            f"columns are {describe_choices(kinds)}")
    expected = {name: ("string" if name in categorical else kinds[name]) for name in [*features, label]}

    collect_labels = not (kinds[label] == "float" and (encoders.task or spec.task) != "classification")
    scan = _scan(spec.format, train_files, "train", expected, label, categorical, collect_labels)
    labels = _fit_labels(spec, scan, encoders, collect_labels)
    encoder = ColumnEncoder(features, categorical, encoders.categories).fitted(
        {name: _sorted_array(scan.categories[name]) for name in categorical})
    encoding = TableEncoding(spec.format, features, label, encoder, labels.state)
    counts = {"train": scan.rows}
    for split in ("val", "test"):
        if split in spec.files:
            counts[split] = _scan(spec.format, spec.files[split], split, expected, label, [], False,
                                  encoding=encoding).rows

    def stream(split: str) -> TableStream | None:
        if split not in spec.files:
            return None
        return TableStream(tuple(spec.files[split]), counts[split], encoding, spec.shuffle_buffer)

    classification = labels.task == "classification"
    info = DataInfo(
        source=f"{spec.source} {len(train_files)} file(s) {first}{' …' if len(train_files) > 1 else ''}",
        task=labels.task, num_classes=len(labels.class_names) if classification else None,
        class_names=list(labels.class_names) if classification else None, feature_names=encoder.feature_names,
        input_shape=(encoding.width,), encoders=encoder.add_to(labels.state), task_reason=labels.task_reason,
        streamed={"features": features, "categorical": categorical, "label": label,
                  "files": dict(spec.files), "counts": counts,
                  "adapt_samples": spec.adapt_samples, "shuffle_buffer": spec.shuffle_buffer},
    )
    return Streams(stream("train"), stream("val"), stream("test"), info,
                   adapt_samples=None if spec.adapt_samples == "all" else spec.adapt_samples)


def _kinds(fmt: TableFormat, path: str) -> dict[str, str]:
    """Column → "float", "int", "bool" or "string" (any other type: "<the type>")."""
    import pyarrow as pa

    try:
        types = fmt.columns(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable {fmt.what} ({_first_line(exc)})") from None
    return {name: _kind(kind) for name, kind in types.items()}


def _kind(kind: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    return str(kind)


def _scan(fmt: TableFormat, files: list[str], split: str, expected: dict[str, str], label: str,
          categorical: list[str], collect_labels: bool, encoding: TableEncoding | None = None) -> _Scan:
    """Read every row of ``files``: kinds, nulls and finite numbers checked, rows counted; training
    files collect the categories and the labels, val/test files have their labels encoded (``encoding``)."""
    import numpy as np
    import pyarrow as pa

    scan = _Scan(categories={name: set() for name in categorical}, label_rows={} if collect_labels else None)
    for path in files:
        kinds = _kinds(fmt, path) if path != files[0] or split != "train" else None
        for name, kind in expected.items():
            if kinds is not None and name not in kinds:
                key = "data.label" if name == label else "data.features"
                raise DataError(f"{path}: no column '{name}' ({key}){did_you_mean(name, kinds)}; "
                                f"columns are {describe_choices(kinds)}")
            if kinds is not None and kinds[name] != kind and kind != "string":
                raise DataError(f"{path}: column '{name}' holds {kinds[name]} values but {kind} values in the first "
                                f"training file; every file needs the same column types")
        done = 0
        try:
            for batch in fmt.batches(path, list(expected)):
                _check_batch(batch, path, done, expected)
                values = {name: _values(batch.column(name)) for name in [*categorical, label]}
                for name in categorical:
                    scan.categories[name].update(np.unique(values[name]).tolist())
                where = _where(path, done)
                if encoding is not None:
                    encoding.encode_labels(values[label], where)
                elif scan.label_rows is not None:
                    distinct, first = np.unique(values[label], return_index=True)
                    for value, i in zip(distinct.tolist(), first.tolist(), strict=True):
                        scan.label_rows.setdefault(value, where(i))
                elif scan.label_sample is None:
                    scan.label_sample = values[label]
                done += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: not a readable {fmt.what} ({_first_line(exc)})") from None
        if done == 0:
            raise DataError(f"{path}: the file holds no rows; remove it from data.files.{split}")
        scan.rows += done
    return scan


def _check_batch(batch: pa.RecordBatch, path: str, offset: int, expected: dict[str, str]) -> None:
    import numpy as np
    import pyarrow.compute as pc

    for name, kind in expected.items():
        column = batch.column(name)
        if column.null_count:
            i = pc.index(pc.is_null(column), True).as_py()
            raise DataError(f"{path} row {offset + i + 1}: column '{name}' is empty; "
                            "fill in a value or remove the row (fmtrain does not impute)")
        if kind == "float":
            values = column.to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise DataError(f"{path} row {offset + int(bad[0]) + 1}: column '{name}' is {values[bad[0]]}; "
                                "values must be finite numbers")
        elif kind not in ("int", "bool", "string"):
            raise DataError(f"{path}: column '{name}' holds {kind} values; features are numbers, booleans or "
                            "strings (one-hot)")


def _fit_labels(spec: TableSpec, scan: _Scan, encoders: EncoderState, collected: bool) -> Labels:
    name = f"label column '{spec.label}'"
    if not collected:  # float targets: the first batch says why the task is regression
        return encode_labels(scan.label_sample, task=spec.task, saved=encoders, where=lambda i: spec.files["train"][0],
                             name=name)
    rows = scan.label_rows
    values = _sorted_array(rows)
    return encode_labels(values, task=spec.task, saved=encoders, where=lambda i: rows[values[i].item()], name=name)


def _sorted_array(values) -> np.ndarray:
    import numpy as np

    return np.array(sorted(values))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


__all__ = ["ParquetSource", "TableEncoding", "TableFormat", "TableSpec", "TableStream", "build_tables"]
