"""The ``csv`` and ``npz`` sources: a table of feature columns (or named inputs) and a label.

csv columns stay raw until :func:`fmtrain.data.build` fits a :class:`~fmtrain.data.tabular.ColumnEncoder`
on the training rows (numbers pass, categories are one-hot); npz arrays are numbers already.
``data.inputs`` instead names model inputs (see :mod:`fmtrain.data.records`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    pass
from pydantic import Field, model_validator

from fmtrain.data import records, tabular
from fmtrain.data.encoding import EncoderState
from fmtrain.data.labels import Labels, encode_labels
from fmtrain.data.sources import KERAS_ARRAYS, SOURCES, Loaded, SourceConfig
from fmtrain.data.tfrecord import check_adapt_samples
from fmtrain.errors import DataError
from fmtrain.registry import describe_choices, did_you_mean


class CsvSource(SourceConfig):
    """A csv file with a header row: numeric and one-hot categorical columns, or named inputs."""

    source: Literal["csv"] = "csv"
    """csv: a comma-separated file with a header row."""
    path: str
    """The .csv file (relative to the config file)."""
    label: str | None = None
    """Label column (default: the last column)."""
    features: list[str] | None = None
    """Feature columns (default: every column but the label)."""
    categorical: list[str] | None = None
    """Columns to one-hot encode (default: every non-numeric feature column)."""
    inputs: records.Inputs | None = None
    """Named model inputs instead of features, e.g. {numeric: [age, income], category: [city], text: review}:
    numeric → float32 matrix, category → int32 ids from vocabularies of the training rows (0 = unseen),
    text (one column) → strings. Each kind names one input of the model."""
    stream: bool = False
    """Stream the file(s) through tf.data instead of loading them (data larger than memory): path may then be a
    glob of csv shards, split by whole shards (test_split/validation_split of them, split: last or random)."""
    shuffle_buffer: int | None = Field(None, ge=1)
    """With stream: training rows permuted together, in blocks (default 10000)."""
    adapt_samples: int | Literal["all"] | None = None
    """With stream: training rows that adapting preprocessing steps are fitted on (default 10000; all: every one).
    Categories and labels are read from every training shard."""

    @model_validator(mode="after")
    def _inputs_replace_features(self) -> CsvSource:
        if self.inputs is not None:
            if self.features is not None or self.categorical is not None:
                raise ValueError("inputs replaces features and categorical; give inputs alone")
            records.check_inputs(self.inputs, images=False)
        return self

    @model_validator(mode="after")
    def _stream_keys(self) -> CsvSource:
        if self.stream and self.inputs is not None:
            raise ValueError("stream: true reads features (and categorical), not inputs; remove one of them")
        if not self.stream and (self.shuffle_buffer is not None or self.adapt_samples is not None):
            raise ValueError("shuffle_buffer and adapt_samples are read with stream: true only; add it or remove them")
        if isinstance(self.adapt_samples, int):
            check_adapt_samples(self.adapt_samples)
        return self

    @property
    def streams(self) -> bool:
        """``stream: true``: :func:`fmtrain.data.build` returns streams (:meth:`build_streams`)."""
        return self.stream

    def build_streams(self, *, seed: int, encoders: EncoderState):
        """The csv shards streamed: :func:`fmtrain.data.csv_stream.build`."""
        from fmtrain.data import csv_stream

        return csv_stream.build(self, seed=seed, encoders=encoders)


class NpzSource(SourceConfig):
    """Arrays saved with np.savez: features, a label, or named inputs."""

    source: Literal["npz"] = "npz"
    """npz: arrays saved with np.savez(path, x=..., y=...)."""
    path: str
    """The .npz file (relative to the config file)."""
    label: str | None = None
    """Label array (default 'y')."""
    features: list[str] | None = None
    """Feature arrays (default ['x']); several give a dict of named inputs."""
    inputs: records.Inputs | None = None
    """Named model inputs instead of features, e.g. {image: pixels, numeric: [age], category: [tag], text: caption}:
    numeric → float32 matrix, category → int32 ids (0 = unseen), text → strings, image → pixels."""

    @model_validator(mode="after")
    def _inputs_replace_features(self) -> NpzSource:
        if self.inputs is not None:
            if self.features is not None:
                raise ValueError("inputs replaces features; give inputs alone")
            records.check_inputs(self.inputs, images=True)
        return self


# --------------------------------------------------------------------------- csv


@SOURCES.register("csv", params=CsvSource)
def load_csv(cfg: CsvSource, saved: EncoderState) -> Loaded:
    """A csv file with a header row (data.path); numeric and one-hot categorical columns, or named data.inputs."""
    path = tabular.resolve_path(cfg.path, "csv", "a .csv file with a header row")
    table = tabular.read_csv(path)
    label = cfg.label if cfg.label is not None else table.header[-1]
    labels = _csv_labels(cfg, table, label, saved)
    if cfg.inputs is not None:
        x, ids_encoder, names = records.csv_inputs(cfg.inputs, table, label, saved)
        return Loaded(x, labels.y, f"csv {path}", labels.task, labels.task_reason, class_names=labels.class_names,
                      feature_names=names, label_state=labels.state, feature_encoder=ids_encoder)
    raw, encoder = _csv_features(cfg, table, label, saved)
    return Loaded(raw, labels.y, f"csv {path}", labels.task, labels.task_reason, class_names=labels.class_names,
                  label_state=labels.state, feature_encoder=encoder)


def _csv_labels(cfg: CsvSource, table: tabular.CsvRows, label: str, saved: EncoderState) -> Labels:
    cells = table.column(label, "data.label")
    values = tabular.typed_cells(cells)
    if values.dtype.kind == "U" and (saved.task or cfg.task) == "auto" and tabular.looks_numeric(cells):
        i = next(i for i, cell in enumerate(cells) if not tabular.is_number(cell))
        raise DataError(
            f"{table.path}:{table.lines[i]}: label column '{label}' holds numbers but this row has "
            f"'{cells[i]}'; fix the value, or set data.task: classification to treat labels as class names"
        )
    return encode_labels(values, task=cfg.task, saved=saved, where=lambda i: f"{table.path}:{table.lines[i]}",
                         name=f"label column '{label}'")


def _csv_features(cfg: CsvSource, table: tabular.CsvRows, label: str, saved: EncoderState):
    # At eval time the trained model fixes the columns and which are categorical.
    import numpy as np

    if saved.columns is not None:
        columns, key = list(saved.columns), "the trained model's columns"
    else:
        columns = cfg.features if cfg.features is not None else [c for c in table.header if c != label]
        key = "data.features"
    if label in columns:
        raise DataError(
            f"{table.path}: column '{label}' is both the label (data.label) and a feature ({key}); "
            "remove it from data.features"
        )
    if not columns:
        raise DataError(
            f"{table.path}: no feature columns besides the label '{label}'; add columns or set data.features"
        )
    cells = {name: table.column(name, key) for name in columns}
    for name in cfg.categorical or []:
        if name not in columns:
            raise DataError(
                f"{table.path}: data.categorical lists '{name}', which is not a feature column"
                f"{did_you_mean(name, columns)}; feature columns are {describe_choices(columns)}"
            )
    if saved.categories is not None:
        categorical = list(saved.categories)
    elif cfg.categorical is not None:
        categorical = list(cfg.categorical)
    else:
        categorical = [name for name in columns if not tabular.looks_numeric(cells[name])]
    raw = {
        name: np.array(cells[name], dtype=str) if name in categorical
        else tabular.parse_numeric(table, name, cells[name])
        for name in columns
    }
    return raw, tabular.ColumnEncoder(columns, categorical, saved.categories)


# --------------------------------------------------------------------------- npz


@SOURCES.register("npz", params=NpzSource)
def load_npz(cfg: NpzSource, saved: EncoderState) -> Loaded:
    """Arrays from an .npz file (data.path): features 'x' (or data.features/inputs), labels 'y' (or data.label)."""
    path = tabular.resolve_path(cfg.path, "npz", "an .npz file made with np.savez(path, x=..., y=...)")
    arrays = tabular.read_npz(path)
    if cfg.features is None and cfg.label is None and cfg.inputs is None and all(k in arrays for k in KERAS_ARRAYS):
        return _load_npz_keras_layout(cfg, path, arrays, saved)
    label = cfg.label if cfg.label is not None else "y"
    tabular.require_arrays(arrays, path, [label], "data.label")
    features = cfg.features if cfg.features is not None else ["x"]
    if cfg.inputs is None:
        tabular.require_arrays(arrays, path, features, "data.features")
        if label in features:
            raise DataError(f"{path}: array '{label}' is both the label (data.label) and a feature (data.features)")
    y = arrays[label]
    if y.ndim == 0 or len(y) == 0:
        raise DataError(f"{path}: array '{label}' (data.label) is empty; expected one label per example")
    labels = encode_labels(y, task=cfg.task, saved=saved, where=lambda i: _npz_row(path, label, i),
                           name=f"label array '{label}'")
    if cfg.inputs is not None:
        x, encoder, names = records.npz_inputs(cfg.inputs, path, arrays, len(y), label, saved)
        return Loaded(x, labels.y, f"npz {path}", labels.task, labels.task_reason, class_names=labels.class_names,
                      feature_names=names, label_state=labels.state, feature_encoder=encoder)
    x = _npz_features(path, arrays, features, len(y), label)
    return Loaded(x, labels.y, f"npz {path}", labels.task, labels.task_reason, class_names=labels.class_names,
                  label_state=labels.state)


def _load_npz_keras_layout(cfg: NpzSource, path: Path, arrays: dict, saved: EncoderState) -> Loaded:
    import numpy as np

    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if y_train.ndim == 0 or y_test.ndim == 0 or y_train.shape[1:] != y_test.shape[1:]:
        raise DataError(
            f"{path}: y_train has shape {y_train.shape} and y_test {y_test.shape}; "
            "they need one label per row and the same shape per label"
        )
    n_train = len(y_train)
    # One encoding for both parts, so a class name maps to the same id in train and test.
    labels = encode_labels(
        np.concatenate([y_train, y_test]), task=cfg.task, saved=saved,
        where=lambda i: _npz_row(path, "y_train", i) if i < n_train else _npz_row(path, "y_test", i - n_train),
        name="label array 'y_train' (with 'y_test')",
    )
    x_train = _npz_features(path, arrays, ["x_train"], n_train, "y_train")
    x_test = _npz_features(path, arrays, ["x_test"], len(y_test), "y_test")
    return Loaded(x_train, labels.y[:n_train], f"npz {path}", labels.task, labels.task_reason,
                  class_names=labels.class_names, test=(x_test, labels.y[n_train:]), label_state=labels.state)


def _npz_row(path: Path, name: str, i: int) -> str:
    return f"{path} array '{name}' row {i}"


def _npz_features(path: Path, arrays: dict, names: list[str], n: int, label: str):
    import numpy as np

    out = {}
    for name in names:
        x = arrays[name]
        if x.ndim == 0 or len(x) != n:
            raise DataError(
                f"{path}: array '{name}' has {len(x) if x.ndim else 0} rows but '{label}' has {n}; "
                "every feature array needs one row per label"
            )
        if x.dtype.kind not in "biuf":
            raise DataError(f"{path}: array '{name}' has dtype {x.dtype}; features must be numbers")
        # uint8 images stay compact (the engine casts); everything else becomes float32.
        x = x if x.dtype == np.uint8 else x.astype(np.float32)
        out[name] = x.reshape(n, 1) if x.ndim == 1 else x
    return out[names[0]] if len(names) == 1 else out
