"""``fmtrain predict``'s INPUT, read as the run's training examples were: the run's own source and
encoders over a file, a folder of loose images or texts, or streamed shards (a file, glob or folder).

The examples come back in file order, without labels, as :class:`PredictInput` (in memory) or as a
stream whose ``feature_batches`` feed the model batch by batch (:func:`streamed_input`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmtrain.errors import DataError

if TYPE_CHECKING:
    from fmtrain.config.schema import Config
    from fmtrain.data import DataInfo


STREAMED_SUFFIXES = {"tfrecord": (".tfrecord", ".tfrecords", ".tfrec"), "parquet": (".parquet", ".pq"),
                     "csv": (".csv",)}
"""A streamed source's files, as a folder given as INPUT is filtered (a pack folder also holds data.yaml)."""


def streamed_input(cfg: Config, info: DataInfo, path: str):
    """The files ``path`` names (a file, a glob, or a folder: its files of the source's format, by name) as a
    predict-only stream of the run's source, encoded with the run's features and encoders; no label needed.

    Args:
        cfg: the run's config (its ``data`` streams).
        info: the run's data info (its encoders: columns, categories).
        path: a file, a glob or a folder, local or a URL ``tf.io.gfile`` reads (``gs://…``).

    Returns:
        A stream (:class:`~fmtrain.data.tfrecord.Stream` or :class:`~fmtrain.data.parquet.TableStream`)
        whose ``feature_batches`` give the model's inputs in file order.

    Raises:
        DataError: nothing matches, or a file lacks a trained feature, naming it.
    """
    import tensorflow as tf

    from fmtrain.data import csv_stream, parquet, tfrecord

    data = cfg.data
    suffixes = STREAMED_SUFFIXES[data.source]
    if tf.io.gfile.isdir(path):
        folder = path.rstrip("/")
        files = sorted(f"{folder}/{name}" for name in tf.io.gfile.listdir(folder)
                       if name.lower().endswith(suffixes) and not name.startswith("."))
        if not files:
            raise DataError(f"{path}: no {' or '.join(suffixes)} files in the folder; give the run's source "
                            f"'{data.source}' files, a glob or a folder of them")
    else:
        files = tfrecord.expand_files(path, "INPUT", f"{data.source} files")
    if data.source == "tfrecord":
        inputs = {name: spec for name, spec in data.features.items() if name != data.label}
        return tfrecord.Stream.unlabelled(files, inputs)
    if data.source == "parquet":
        return parquet.TableStream.unlabelled(files, parquet.PARQUET, info.encoders)
    return csv_stream.predict_stream(files, info.encoders)


@dataclass(frozen=True)
class PredictInput:
    """The examples of INPUT as the model takes them, in file order."""

    x: Any
    """One array, or a dict of named arrays."""
    files: list[str] | None = None
    """The file each example came from, for a folder of loose files (relative to the folder)."""


def read_inputs(cfg: Config, info: DataInfo, path: Path) -> PredictInput:
    """The examples of ``path`` encoded as the run's training examples were, in file order (no labels needed).

    csv and npz features are read without the label column (extra columns are ignored); an image
    folder may hold the images themselves instead of class sub-folders; other sources are read by
    their loader, which needs the labelled layout.

    Raises:
        DataError: a trained column or array is missing, or a value cannot be encoded.
    """
    from fmtrain.data import csv_npz, records, sources, tabular

    data = cfg.data
    saved = info.encoders
    if "path" not in type(data).model_fields:  # bundled and generated sets read no file
        arrays = tabular.read_npz(path) if path.suffix.lower() == ".npz" and path.is_file() else None
        if arrays is None or "x" not in arrays:
            raise DataError(
                f"{path}: the run's source '{data.source}' reads no file, so INPUT must be an .npz with the "
                f"examples in an array 'x' of shape (n, {', '.join(map(str, info.input_shape))})"
            )
        return PredictInput(arrays["x"])
    data = data.model_copy(update={"path": str(path)})
    if data.source == "csv":
        table = tabular.read_csv(tabular.resolve_path(str(path), "csv", "a .csv file with a header row"))
        if data.inputs is not None:
            raw, encoder, _ = records.csv_inputs(data.inputs, table, data.label, saved)
        else:
            raw, encoder = csv_npz._csv_features(data, table, data.label, saved)
        return PredictInput(encoder.fitted(raw).transform(raw) if encoder is not None else raw)
    if data.source == "npz" and data.inputs is not None:
        arrays = tabular.read_npz(path)
        kind, spec = next(iter(data.inputs.items()))
        first = spec if isinstance(spec, str) else spec[0]  # its rows count the examples
        tabular.require_arrays(arrays, path, [first], f"data.inputs.{kind}")
        raw, encoder, _ = records.npz_inputs(data.inputs, path, arrays, len(arrays[first]), first, saved)
        return PredictInput(encoder.fitted(raw).transform(raw) if encoder is not None else raw)
    if data.source == "npz" and (data.features is not None or "x" in _npz_names(path)):
        arrays = tabular.read_npz(path)
        features = data.features if data.features is not None else ["x"]
        tabular.require_arrays(arrays, path, features, "the trained model's features (data.features)")
        return PredictInput(csv_npz._npz_features(path, arrays, features, len(arrays[features[0]]), features[0]))
    if data.source == "image_folder" and path.is_dir() and not _subfolders(path):
        return _loose_images(data, path, info.input_shape)
    if data.source in ("text_csv", "text_jsonl", "text_folder") and not (path.is_dir() and _subfolders(path)):
        return _texts(data, path)
    loaded = sources.load(data, saved)
    x = loaded.test[0] if loaded.test is not None else loaded.x  # as `fmtrain eval --data`
    encoder = loaded.feature_encoder
    return PredictInput(encoder.fitted(x).transform(x) if encoder is not None else x)


def _subfolders(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _loose_images(data, folder: Path, trained_shape: tuple[int, ...]) -> PredictInput:
    """The images directly in ``folder``, sorted by name, decoded as the run's loader decodes them and
    resized to the size the model was trained on (what ``data.image_size`` would do)."""
    from fmtrain.data.images import IMAGE_SUFFIXES, read_images

    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it or in class sub-folders")
    size = tuple(data.image_size) if data.image_size is not None else tuple(trained_shape[:2])
    images = read_images(files, size=size, color_mode=data.color_mode,
                         fix="give every image the size the run was trained on")
    return PredictInput(images, [p.name for p in files])


def _texts(data, path: Path) -> PredictInput:
    """Documents without labels: a .txt file (one per line), the loose .txt files of a folder (one per
    file, sorted by name, each named), or the text column/key of the source's csv/jsonl."""
    from fmtrain.data import tabular, text

    def read(file: Path) -> str:
        try:
            return file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(f"{file}: not UTF-8 text ({err.reason}); save the file as UTF-8") from err

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in text.TEXT_SUFFIXES
                       and not p.name.startswith("."))
        if not files:
            raise DataError(f"{path}: no .txt files in it or in class sub-folders")
        return PredictInput(text._strings([read(p).strip() for p in files]), [p.name for p in files])
    if path.suffix.lower() == ".txt":
        return PredictInput(text._strings(read(path).splitlines()))
    if data.source == "text_csv":
        return PredictInput(text._strings(tabular.read_csv(path).column(data.text, "data.text")))
    if data.source == "text_jsonl":
        documents = []
        for line_number, record in text._json_lines(path):
            if not isinstance(record.get(data.text), str):
                raise DataError(f"{path}:{line_number}: no string under key '{data.text}' (data.text)")
            documents.append(record[data.text])
        return PredictInput(text._strings(documents))
    raise DataError(f"{path}: expected a .txt file (one document per line) or a folder of .txt files")


def _npz_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return [name.removesuffix(".npy") for name in archive.namelist()]
    except (OSError, zipfile.BadZipFile):
        return []  # the loader says what is wrong with the file
