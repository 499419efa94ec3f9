"""Data sources, registered by the name used in ``data.source``.

A loader reads its examples and encodes the labels, but does not split them: it returns a
:class:`Loaded`, and :func:`fmtrain.data.build` splits it and fits any feature encoder on the
training rows. This module holds the registry, the bundled and keras.datasets sets and the
csv/npz files; folders, text, interactions and generated sets live in their own modules and
register here. Only numpy (and pydantic, for source options) is imported; scikit-learn and
Keras are imported inside the loaders that need them, so ``fmtrain list sources`` and config
validation stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from pydantic import ValidationError

from fmtrain.data import ids, records, tabular
from fmtrain.errors import DataError
from fmtrain.registry import Registry, describe_choices, did_you_mean

if TYPE_CHECKING:
    from fmtrain.config.schema import DataConfig

Encoder = Union[tabular.ColumnEncoder, ids.IdEncoder]


@dataclass(frozen=True)
class Loaded:
    """A source's examples before splitting: labels encoded, csv features still raw columns."""

    x: np.ndarray | dict[str, np.ndarray]
    y: np.ndarray
    source: str
    task: str
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    test: tuple[np.ndarray | dict[str, np.ndarray], np.ndarray] | None = None
    """The source's own test split, kept as it is."""
    encoders: dict = field(default_factory=dict)
    """Label state to hand back at eval time (task, class names)."""
    encoder: Encoder | None = None
    """Fitted on the training rows by ``build``: csv columns → matrix, or raw ids → int32 indices."""
    users: np.ndarray | None = None
    """The user of each row (interactions), for ``split: leave_last_per_user``."""
    times: np.ndarray | None = None
    """When each row happened (interactions; sortable numbers), for ``split: leave_last_per_user``."""


Loader = Callable[["DataConfig", dict], Loaded]
SOURCES: Registry[Loader] = Registry("data source")

# Optional data keys read by only some sources; DataConfig rejects them elsewhere.
SOURCE_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"text_csv", "text_jsonl"}),
    "inputs": frozenset({"csv", "npz"}),
    "image_size": frozenset({"image_folder"}),
    "color_mode": frozenset({"image_folder"}),
}
# Sources whose rows are (user, item) interactions: split: leave_last_per_user works on them.
PER_USER_SOURCES = frozenset({"interactions", "synthetic_ratings"})


def load(cfg: DataConfig, encoders: dict) -> Loaded:
    """Run the loader registered as ``cfg.source``."""
    return SOURCES.get(cfg.source).build(cfg, encoders)


def source_options(source: str, options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate ``data.options`` against the source's options class; return them with defaults filled in.

    Raises:
        ValueError: options for a source that takes none, an unknown option or a bad value
            (one line per problem, naming ``options.<key>``).
    """
    params = SOURCES.get(source).params if source in SOURCES.names() else None
    if params is None:
        if options:
            raise ValueError(f"source '{source}' takes no options; remove options")
        return options
    try:
        return params.model_validate(options or {}).model_dump(mode="json")
    except ValidationError as err:
        fields = list(params.model_fields)
        problems = []
        for error in err.errors():
            key = ".".join(str(p) for p in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown option '{key}'{did_you_mean(key, fields)}; "
                                f"{source} takes {describe_choices(fields)}")
            else:
                problems.append(f"option '{key}': {error['msg']}" if key else error["msg"])
        raise ValueError("; ".join(problems)) from None


def options_of(cfg: DataConfig):
    """``cfg.options`` as the source's validated options object."""
    params = SOURCES.get(cfg.source).params
    return params.model_validate(cfg.options or {})


def reject_keys(cfg: DataConfig, keys: tuple[str, ...], why: str) -> None:
    """Raise a DataError for the first of ``keys`` set in ``cfg``; ``why`` says why the source ignores it."""
    for key in keys:
        if getattr(cfg, key) is not None:
            raise DataError(f"data.{key} is not used by source '{cfg.source}' ({why}); remove it")


def check_task(cfg: DataConfig, task: str) -> None:
    """Raise a DataError when ``data.task`` contradicts a source that is always a ``task`` data set."""
    if cfg.task not in ("auto", task):
        raise DataError(
            f"data.task is {cfg.task} but source '{cfg.source}' is a {task} data set; "
            f"remove data.task or set it to {task}"
        )


# --------------------------------------------------------------------------- scikit-learn


def _load_sklearn(cfg: DataConfig, task: str) -> Loaded:
    reject_keys(cfg, ("path", "label", "features", "categorical"), "it is bundled with scikit-learn")
    check_task(cfg, task)
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{cfg.source}")()
    source = f"{cfg.source} (scikit-learn, bundled)"
    if task == "regression":
        return Loaded(bunch.data.astype(np.float32), bunch.target.astype(np.float32), source, task,
                      feature_names=[str(n) for n in bunch.feature_names])
    return Loaded(bunch.data.astype(np.float32), bunch.target.astype(np.int32), source, task,
                  class_names=[str(n) for n in bunch.target_names],
                  feature_names=[str(n) for n in bunch.feature_names])


@SOURCES.register("digits")
def load_digits(cfg: DataConfig, encoders: dict) -> Loaded:
    """Handwritten digits, 1,797 8×8 grey images (values 0..16), 10 classes; bundled, no download."""
    loaded = _load_sklearn(cfg, "classification")
    # The 8x8 layout lets image models (Conv2D) use it; Flatten recovers the 64 pixels.
    images = loaded.x.reshape(-1, 8, 8)
    return Loaded(images, loaded.y, loaded.source, loaded.task, class_names=loaded.class_names)


@SOURCES.register("iris")
def load_iris(cfg: DataConfig, encoders: dict) -> Loaded:
    """Iris flowers, 150 rows × 4 measurements, 3 species; bundled, no download."""
    return _load_sklearn(cfg, "classification")


@SOURCES.register("wine")
def load_wine(cfg: DataConfig, encoders: dict) -> Loaded:
    """Wine cultivars, 178 rows × 13 chemical measurements, 3 classes; bundled, no download."""
    return _load_sklearn(cfg, "classification")


@SOURCES.register("breast_cancer")
def load_breast_cancer(cfg: DataConfig, encoders: dict) -> Loaded:
    """Breast cancer diagnosis, 569 rows × 30 features, malignant/benign; bundled, no download."""
    return _load_sklearn(cfg, "classification")


@SOURCES.register("diabetes")
def load_diabetes(cfg: DataConfig, encoders: dict) -> Loaded:
    """Diabetes progression, 442 rows × 10 standardized features, regression; bundled, no download."""
    return _load_sklearn(cfg, "regression")


# --------------------------------------------------------------------------- keras.datasets

KERAS_ARRAYS = ["x_train", "y_train", "x_test", "y_test"]
KERAS_CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}


def _download_keras_dataset(name: str):
    """Return ``((x_train, y_train), (x_test, y_test))`` from ``keras.datasets.<name>``."""
    from keras import datasets

    return getattr(datasets, name).load_data()


def _load_keras(cfg: DataConfig) -> Loaded:
    reject_keys(cfg, ("label", "features", "categorical"), "its arrays are fixed")
    check_task(cfg, "classification")
    name = cfg.source
    if cfg.path:
        path = tabular.resolve_path(cfg.path, name, "an .npz with arrays x_train, y_train, x_test, y_test")
        arrays = tabular.read_npz(path)
        tabular.require_arrays(arrays, path, KERAS_ARRAYS, "Keras layout for data.path")
        train = (arrays["x_train"], arrays["y_train"])
        test = (arrays["x_test"], arrays["y_test"])
        source, origin = f"{name} {path}", str(path)
    else:
        try:
            train, test = _download_keras_dataset(name)
        except Exception as err:  # keras.utils.get_file re-raises network errors as bare Exception.
            raise DataError(
                f"could not download {name} with keras.datasets ({type(err).__name__}: {err}); "
                f"get {name}'s .npz with arrays x_train, y_train, x_test, y_test "
                f"(Keras caches it in ~/.keras/datasets/) and set data.path to it"
            ) from err
        source, origin = f"{name} (keras.datasets, downloaded)", f"keras.datasets.{name}"
    classes = KERAS_CLASS_NAMES[name]
    x_train, y_train = _image_split(*train, origin, "train", len(classes))
    x_test, y_test = _image_split(*test, origin, "test", len(classes))
    return Loaded(x_train, y_train, source, "classification", class_names=classes, test=(x_test, y_test))


def _image_split(x: np.ndarray, y: np.ndarray, origin: str, part: str, num_classes: int):
    # cifar10 stores labels as (n, 1).
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{origin}: y_{part} has shape {y.shape} for x_{part} of shape {x.shape}; "
            f"expected one class id per image, shape ({len(x)},)"
        )
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= num_classes)):
        raise DataError(
            f"{origin}: y_{part} must hold integer class ids 0..{num_classes - 1}, "
            f"found {y.dtype} values {y.min() if y.size else ''}..{y.max() if y.size else ''}"
        )
    if x.dtype.kind not in "iuf":
        raise DataError(f"{origin}: x_{part} has dtype {x.dtype}; expected image pixels (uint8 or float)")
    return x, y.astype(np.int32)


@SOURCES.register("mnist")
def load_mnist(cfg: DataConfig, encoders: dict) -> Loaded:
    """MNIST handwritten digits, 60k+10k 28×28 uint8 images, 10 classes (download or data.path .npz)."""
    return _load_keras(cfg)


@SOURCES.register("fashion_mnist")
def load_fashion_mnist(cfg: DataConfig, encoders: dict) -> Loaded:
    """Fashion-MNIST clothing, 60k+10k 28×28 uint8 images, 10 classes (download or data.path .npz)."""
    return _load_keras(cfg)


@SOURCES.register("cifar10")
def load_cifar10(cfg: DataConfig, encoders: dict) -> Loaded:
    """CIFAR-10 objects, 50k+10k 32×32×3 uint8 images, 10 classes (download or data.path .npz)."""
    return _load_keras(cfg)


# --------------------------------------------------------------------------- files


@SOURCES.register("csv")
def load_csv(cfg: DataConfig, encoders: dict) -> Loaded:
    """A csv file with a header row (data.path); numeric and one-hot categorical columns, or named data.inputs."""
    path = tabular.resolve_path(cfg.path, "csv", "a .csv file with a header row")
    table = tabular.read_csv(path)
    label = cfg.label if cfg.label is not None else table.header[-1]
    labels = _csv_labels(cfg, table, label, encoders)
    if cfg.inputs is not None:
        x, ids_encoder, names = records.csv_inputs(cfg.inputs, table, label, encoders)
        return Loaded(x, labels.y, f"csv {path}", labels.task, class_names=labels.class_names,
                      feature_names=names, encoders=labels.state, encoder=ids_encoder)
    raw, encoder = _csv_features(cfg, table, label, encoders)
    return Loaded(raw, labels.y, f"csv {path}", labels.task, class_names=labels.class_names,
                  encoders=labels.state, encoder=encoder)


def _csv_labels(cfg: DataConfig, table: tabular.CsvRows, label: str, encoders: dict) -> tabular.Labels:
    cells = table.column(label, "data.label")
    values = tabular.typed_cells(cells)
    if values.dtype.kind == "U" and encoders.get("task", cfg.task) == "auto" and tabular.looks_numeric(cells):
        i = next(i for i, cell in enumerate(cells) if not tabular.is_number(cell))
        raise DataError(
            f"{table.path}:{table.lines[i]}: label column '{label}' holds numbers but this row has "
            f"'{cells[i]}'; fix the value, or set data.task: classification to treat labels as class names"
        )
    return tabular.encode_labels(values, task=cfg.task, encoders=encoders,
                                 where=lambda i: f"{table.path}:{table.lines[i]}")


def _csv_features(cfg: DataConfig, table: tabular.CsvRows, label: str, encoders: dict):
    # At eval time the trained model fixes the columns and which are categorical.
    if encoders.get("columns") is not None:
        columns, key = list(encoders["columns"]), "the trained model's columns"
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
    if encoders.get("categories") is not None:
        categorical = list(encoders["categories"])
    elif cfg.categorical is not None:
        categorical = list(cfg.categorical)
    else:
        categorical = [name for name in columns if not tabular.looks_numeric(cells[name])]
    raw = {
        name: np.array(cells[name], dtype=str) if name in categorical
        else tabular.parse_numeric(table, name, cells[name])
        for name in columns
    }
    return raw, tabular.ColumnEncoder(columns, categorical, encoders.get("categories"))


@SOURCES.register("npz")
def load_npz(cfg: DataConfig, encoders: dict) -> Loaded:
    """Arrays from an .npz file (data.path): features 'x' (or data.features or data.inputs), labels 'y' (or data.label)."""
    reject_keys(cfg, ("categorical",), "npz arrays are already numbers")
    path = tabular.resolve_path(cfg.path, "npz", "an .npz file made with np.savez(path, x=..., y=...)")
    arrays = tabular.read_npz(path)
    if cfg.features is None and cfg.label is None and cfg.inputs is None and all(k in arrays for k in KERAS_ARRAYS):
        return _load_npz_keras_layout(cfg, path, arrays, encoders)
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
    labels = tabular.encode_labels(y, task=cfg.task, encoders=encoders, where=lambda i: _npz_row(path, label, i))
    if cfg.inputs is not None:
        x, encoder, names = records.npz_inputs(cfg.inputs, path, arrays, len(y), label, encoders)
        return Loaded(x, labels.y, f"npz {path}", labels.task, class_names=labels.class_names,
                      feature_names=names, encoders=labels.state, encoder=encoder)
    x = _npz_features(path, arrays, features, len(y), label)
    return Loaded(x, labels.y, f"npz {path}", labels.task, class_names=labels.class_names, encoders=labels.state)


def _load_npz_keras_layout(cfg: DataConfig, path: Path, arrays: dict, encoders: dict) -> Loaded:
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if y_train.ndim == 0 or y_test.ndim == 0 or y_train.shape[1:] != y_test.shape[1:]:
        raise DataError(
            f"{path}: y_train has shape {y_train.shape} and y_test {y_test.shape}; "
            "they need one label per row and the same shape per label"
        )
    n_train = len(y_train)
    # One encoding for both parts, so a class name maps to the same id in train and test.
    labels = tabular.encode_labels(
        np.concatenate([y_train, y_test]), task=cfg.task, encoders=encoders,
        where=lambda i: _npz_row(path, "y_train", i) if i < n_train else _npz_row(path, "y_test", i - n_train),
    )
    x_train = _npz_features(path, arrays, ["x_train"], n_train, "y_train")
    x_test = _npz_features(path, arrays, ["x_test"], len(y_test), "y_test")
    return Loaded(x_train, labels.y[:n_train], f"npz {path}", labels.task, class_names=labels.class_names,
                  test=(x_test, labels.y[n_train:]), encoders=labels.state)


def _npz_row(path: Path, name: str, i: int) -> str:
    return f"{path} array '{name}' row {i}"


def _npz_features(path: Path, arrays: dict, names: list[str], n: int, label: str):
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
