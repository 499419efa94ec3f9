"""Data sources: the ``data`` section's common keys, the registry, and the bundled and keras.datasets sets.

Each source is one subclass of :class:`SourceConfig` declared next to its loader, holding exactly
the keys that loader reads, and registered with it by the name used in ``data.source``; the config
schema builds its tagged union from the registry (``fmtrain.components``), so ``fmtrain validate``
refuses a key the chosen source does not read, as ``fit`` would. A loader receives its own config
class, reads its examples and encodes the labels, but does not split them: it returns a
:class:`Loaded`, and :func:`fmtrain.data.build` splits it and fits any feature encoder on the
training rows. csv/npz files, folders, text, interactions and generated sets live in their own
modules. Only numpy and pydantic are imported here; scikit-learn and Keras are imported inside the
loaders that need them, so ``fmtrain list sources`` and config validation stay fast.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import numpy as np
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError, core_schema

from fmtrain.config.base import StrictModel
from fmtrain.data import tabular
from fmtrain.data.encoding import EncoderState, FeatureEncoder
from fmtrain.errors import DataError
from fmtrain.registry import Registry


class SourceConfig(StrictModel):
    """The ``data`` section: where the examples come from and how they are split and batched.

    ``source`` picks one subclass, declared next to the source's loader with exactly the keys the
    loader reads; the keys below are common to every source. A source's own key written as null
    counts as unset, so resolved configs of earlier versions (which listed every key) still load.
    """

    source: str
    """Data source: a bundled set (digits, iris, wine, breast_cancer, diabetes), a keras.datasets set
    (mnist, fashion_mnist, cifar10), a file (csv, npz, text_csv, text_jsonl, interactions), a folder with
    one sub-folder per class (image_folder, text_folder) or a generated set (synthetic_sentiment,
    synthetic_ratings, synthetic_multimodal); `fmtrain list sources` describes each."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """What the labels are; auto infers it from the source or the label column's type."""
    test_split: float = Field(0.2, ge=0.0, lt=1.0)
    """Fraction held out as the test split when the source has no test split of its own."""
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of the training data held out for validation after each epoch."""
    split: Literal["last", "random", "leave_last_per_user"] = "last"
    """How held-out rows are taken: 'last' rows (as Keras's validation_split), a seeded random draw, or
    (interactions, synthetic_ratings) 'leave_last_per_user': test gets each user's latest interaction
    (by timestamp, else file order), validation the one before; test_split and validation_split then
    only switch those splits on (> 0) or off (0), and users with a single interaction stay in training."""
    stratify: bool = False
    """Keep class proportions in random splits (classification only)."""
    batch_size: int = Field(32, ge=1)
    """Examples per training step."""
    shuffle: bool = True
    """Reshuffle the training data every epoch (seeded)."""
    cache: bool = True
    """Cache decoded examples in memory after the first epoch (tf.data feed)."""
    prefetch: int | Literal["auto"] = "auto"
    """Batches prepared ahead of the training step (tf.data feed); auto lets tf.data tune it."""

    per_user: ClassVar[bool] = False
    """Rows are (user, item) interactions, so ``split: leave_last_per_user`` applies."""

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        """The task ``source``'s labels always are, or None when its labels decide."""
        return None

    @model_validator(mode="wrap")
    @classmethod
    def _keys_of_other_sources(cls, value: Any, handler) -> SourceConfig:
        if not isinstance(value, dict):
            return handler(value)
        value = {key: item for key, item in value.items() if item is not None or key in SourceConfig.model_fields}
        try:
            return handler(value)
        except ValidationError as err:
            source = value.get("source", cls.model_fields["source"].default)
            raise _name_the_readers(err, str(source)) from None

    @field_validator("task")
    @classmethod
    def _task_fits_the_source(cls, value: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        fixed = cls.fixed_task(source) if source is not None else None
        if fixed is not None and value not in ("auto", fixed):
            raise ValueError(f"source '{source}' is a {fixed} data set; remove data.task or set it to {fixed}")
        return value

    @field_validator("split")
    @classmethod
    def _leave_last_needs_interactions(cls, value: str, info: ValidationInfo) -> str:
        if value == "leave_last_per_user" and not cls.per_user:
            per_user = [entry.name for entry in SOURCES.entries() if getattr(entry.params, "per_user", False)]
            raise ValueError(
                f"split leave_last_per_user needs user interactions (source {_either(per_user)}), "
                f"not '{info.data.get('source')}'; use split: last or random"
            )
        return value

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> SourceConfig:
        if self.test_split + self.validation_split >= 1.0:
            raise ValueError(
                f"test_split ({self.test_split}) + validation_split ({self.validation_split}) "
                "leaves no training data; keep their sum below 1"
            )
        return self

    @model_serializer(mode="wrap")
    def _source_keys_first(self, handler) -> dict[str, Any]:
        # Resolved configs read best as: source, what only this source reads, then the common keys.
        out = handler(self)
        common = SourceConfig.model_fields
        own = {key: item for key, item in out.items() if key not in common}
        return {"source": out["source"], **own, **{key: out[key] for key in common if key in out and key != "source"}}


_KNOWN_ERRORS = frozenset(typing.get_args(core_schema.ErrorType))


def _name_the_readers(err: ValidationError, source: str) -> ValidationError:
    """``err`` with each "extra key" that another source reads explained as such."""
    readers = key_readers()
    errors = []
    for error in err.errors(include_url=False):
        loc = error["loc"]
        if error["type"] == "extra_forbidden" and len(loc) == 1 and loc[0] in readers:
            reason = f"not read by source '{source}' (only by {_either(readers[loc[0]])}); remove it"
            errors.append({"type": "value_error", "loc": loc, "input": error["input"],
                           "ctx": {"error": ValueError(reason)}})
        elif error["type"] in _KNOWN_ERRORS:
            errors.append(error)
        else:  # a custom error (e.g. unknown_name) keeps its type and message
            errors.append({"type": PydanticCustomError(error["type"], error["msg"]), "loc": loc,
                           "input": error["input"]})
    return ValidationError.from_exception_data(err.title, errors)


def key_readers() -> dict[str, list[str]]:
    """Each key some source reads beyond the common ones → the sources that read it, sorted."""
    readers: dict[str, list[str]] = {}
    for entry in SOURCES.entries():
        for key in entry.params.model_fields:
            if key not in SourceConfig.model_fields:
                readers.setdefault(key, []).append(entry.name)
    return readers


def _either(names: list[str]) -> str:
    names = sorted(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@dataclass(frozen=True)
class Loaded:
    """A source's examples before splitting: labels encoded, csv features still raw columns."""

    x: np.ndarray | dict[str, np.ndarray]
    y: np.ndarray
    source: str
    task: str
    task_reason: str
    """Why the task is what it is, for the user (``DataInfo.task_reason``)."""
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    test: tuple[np.ndarray | dict[str, np.ndarray], np.ndarray] | None = None
    """The source's own test split, kept as it is."""
    label_state: EncoderState = EncoderState()
    """The label fields of the state handed back at eval time (task, class names)."""
    feature_encoder: FeatureEncoder | None = None
    """Fitted on the training rows by ``build``: csv columns → matrix, or raw ids → int32 indices;
    ``build`` adds what it learned to ``label_state``."""
    users: np.ndarray | None = None
    """The user of each row (interactions), for ``split: leave_last_per_user``."""
    times: np.ndarray | None = None
    """When each row happened (interactions; sortable numbers), for ``split: leave_last_per_user``."""


Loader = Callable[[Any, EncoderState], Loaded]
"""``loader(cfg, saved)``: ``cfg`` is the source's own :class:`SourceConfig` subclass, ``saved`` the
state of a previous run (``EncoderState()`` when fitting afresh)."""
SOURCES: Registry[Loader] = Registry("data source")


def load(cfg: SourceConfig, saved: EncoderState) -> Loaded:
    """Run the loader registered as ``cfg.source``."""
    return SOURCES.get(cfg.source).build(cfg, saved)


def fixed_task_reason(cfg: SourceConfig) -> str:
    """Why a source whose task is fixed (:meth:`SourceConfig.fixed_task`) has it."""
    return f"source '{cfg.source}' is a {type(cfg).fixed_task(cfg.source)} data set"


# --------------------------------------------------------------------------- scikit-learn


class BundledSource(SourceConfig):
    """A data set bundled with scikit-learn: nothing to read, nothing to download."""

    source: Literal["digits", "iris", "wine", "breast_cancer", "diabetes"]
    """digits, iris, wine, breast_cancer (classification) or diabetes (regression)."""

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        return "regression" if source == "diabetes" else "classification"


def _load_sklearn(cfg: BundledSource) -> Loaded:
    import numpy as np
    from sklearn import datasets

    task, reason = cfg.fixed_task(cfg.source), fixed_task_reason(cfg)
    bunch = getattr(datasets, f"load_{cfg.source}")()
    source = f"{cfg.source} (scikit-learn, bundled)"
    if task == "regression":
        return Loaded(bunch.data.astype(np.float32), bunch.target.astype(np.float32), source, task, reason,
                      feature_names=[str(n) for n in bunch.feature_names])
    return Loaded(bunch.data.astype(np.float32), bunch.target.astype(np.int32), source, task, reason,
                  class_names=[str(n) for n in bunch.target_names],
                  feature_names=[str(n) for n in bunch.feature_names])


@SOURCES.register("digits", params=BundledSource)
def load_digits(cfg: BundledSource, saved: EncoderState) -> Loaded:
    """Handwritten digits, 1,797 8×8 grey images (values 0..16), 10 classes; bundled, no download."""
    loaded = _load_sklearn(cfg)
    # The 8x8 layout lets image models (Conv2D) use it; Flatten recovers the 64 pixels.
    images = loaded.x.reshape(-1, 8, 8)
    return Loaded(images, loaded.y, loaded.source, loaded.task, loaded.task_reason, class_names=loaded.class_names)


@SOURCES.register("iris", params=BundledSource)
def load_iris(cfg: BundledSource, saved: EncoderState) -> Loaded:
    """Iris flowers, 150 rows × 4 measurements, 3 species; bundled, no download."""
    return _load_sklearn(cfg)


@SOURCES.register("wine", params=BundledSource)
def load_wine(cfg: BundledSource, saved: EncoderState) -> Loaded:
    """Wine cultivars, 178 rows × 13 chemical measurements, 3 classes; bundled, no download."""
    return _load_sklearn(cfg)


@SOURCES.register("breast_cancer", params=BundledSource)
def load_breast_cancer(cfg: BundledSource, saved: EncoderState) -> Loaded:
    """Breast cancer diagnosis, 569 rows × 30 features, malignant/benign; bundled, no download."""
    return _load_sklearn(cfg)


@SOURCES.register("diabetes", params=BundledSource)
def load_diabetes(cfg: BundledSource, saved: EncoderState) -> Loaded:
    """Diabetes progression, 442 rows × 10 standardized features, regression; bundled, no download."""
    return _load_sklearn(cfg)


# --------------------------------------------------------------------------- keras.datasets

KERAS_ARRAYS = ["x_train", "y_train", "x_test", "y_test"]
KERAS_CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}


class KerasDatasetSource(SourceConfig):
    """An image set from keras.datasets, downloaded, or read from a local .npz."""

    source: Literal["mnist", "fashion_mnist", "cifar10"]
    """mnist, fashion_mnist or cifar10."""
    path: str | None = None
    """A local .npz in Keras's layout (x_train, y_train, x_test, y_test), read instead of downloading."""

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        return "classification"


def _download_keras_dataset(name: str):
    """Return ``((x_train, y_train), (x_test, y_test))`` from ``keras.datasets.<name>``."""
    from keras import datasets

    return getattr(datasets, name).load_data()


def _load_keras(cfg: KerasDatasetSource) -> Loaded:
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
    return Loaded(x_train, y_train, source, "classification", fixed_task_reason(cfg), class_names=classes,
                  test=(x_test, y_test))


def _image_split(x: np.ndarray, y: np.ndarray, origin: str, part: str, num_classes: int):
    # cifar10 stores labels as (n, 1).
    import numpy as np

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


@SOURCES.register("mnist", params=KerasDatasetSource)
def load_mnist(cfg: KerasDatasetSource, saved: EncoderState) -> Loaded:
    """MNIST handwritten digits, 60k+10k 28×28 uint8 images, 10 classes (download or data.path .npz)."""
    return _load_keras(cfg)


@SOURCES.register("fashion_mnist", params=KerasDatasetSource)
def load_fashion_mnist(cfg: KerasDatasetSource, saved: EncoderState) -> Loaded:
    """Fashion-MNIST clothing, 60k+10k 28×28 uint8 images, 10 classes (download or data.path .npz)."""
    return _load_keras(cfg)


@SOURCES.register("cifar10", params=KerasDatasetSource)
def load_cifar10(cfg: KerasDatasetSource, saved: EncoderState) -> Loaded:
    """CIFAR-10 objects, 50k+10k 32×32×3 uint8 images, 10 classes (download or data.path .npz)."""
    return _load_keras(cfg)
