"""The data layer: load a source, split it, encode it, as numpy arrays.

``build(cfg, seed=...)`` is the one entry point. It returns :class:`Splits`, whose
:class:`DataInfo` records what the engine and reports need to know about the data (the task and
why it is that task) and the :class:`EncoderState` that ``fmtrain eval`` passes back so new data
is encoded the same way.
Importing this package imports numpy and pydantic only (TensorFlow, Keras, scikit-learn and
Pillow are imported inside the loaders that need them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from fmtrain.data import csv_npz, images, interactions, parquet, sources, splits, synthetic, text, text_corpus, tfrecord  # noqa: F401  (register their sources)
from fmtrain.data.encoding import EncoderState
from fmtrain.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from fmtrain.data.sources import SourceConfig as DataConfig

__all__ = ["DataInfo", "EncoderState", "Split", "Splits", "build"]


@dataclass(frozen=True)
class Split:
    """Examples and labels of one split.

    ``x`` is one array, or a dict of named arrays for multi-input models; ``y`` holds int32
    class ids of shape (n,) for classification and float32 targets for regression.
    """

    x: np.ndarray | dict[str, np.ndarray]
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> Split:
        """The first ``n`` examples."""
        return Split(splits.take(self.x, slice(0, n)), self.y[:n])


@dataclass(frozen=True)
class DataInfo:
    """What the rest of fmtrain needs to know about the data, saved with every run."""

    source: str
    """Human description, e.g. ``"digits (scikit-learn, bundled)"`` or ``"csv /abs/file.csv"``."""
    task: str
    """``"classification"`` or ``"regression"``."""
    num_classes: int | None
    """Classification only."""
    class_names: list[str] | None
    """Classification only; index i names label i."""
    feature_names: list[str] | None
    """Tabular sources, after one-hot expansion (``"color=red"``)."""
    input_shape: tuple[int, ...] | dict[str, tuple[int, ...]]
    """Shape of one example's x (a dict for named inputs)."""
    encoders: EncoderState
    """State learned from the training rows (label names, csv columns and categories, id vocabularies);
    pass it back to build(). Given as a dict (the JSON form), it is read with ``EncoderState.from_dict``."""
    vocab_sizes: dict[str, int] | None = None
    """Inputs of int32 ids made by the data layer (interactions' ``user``/``item``, records' ``category``):
    ids per input, the unseen id 0 included, so ``Embedding(input_dim=vocab_sizes[name])`` covers
    them and ``vocab_sizes["user"] - 1`` users were seen in training. None when no input is ids."""
    label_shape: tuple[int, ...] = ()
    """Shape of one example's label: ``()`` for class ids and single targets, ``(k,)`` for k target columns."""
    task_reason: str | None = None
    """Why ``task`` is what it is, one sentence for the user: ``"set in the config (data.task: regression)"``,
    ``"source 'iris' is a classification data set"``, ``"label column 'species' holds strings, taken as 3 class
    names"``, or for float labels that look like class ids ``"label column 'class' is float with 3 distinct
    values (0.0, 1.0, 2.0), so the task is regression; set data.task: classification if they are classes"``.
    None in runs made before it existed."""
    streamed: dict | None = None
    """Streamed sources (``tfrecord``, ``parquet``, ``csv`` with ``stream: true``): the features, the label, the
    files and example count of each split, ``adapt_samples`` and ``shuffle_buffer``, as JSON. None for in-memory
    data."""

    def __post_init__(self):
        if isinstance(self.encoders, dict):  # the JSON form, e.g. from an older caller
            object.__setattr__(self, "encoders", EncoderState.from_dict(self.encoders))

    def to_dict(self) -> dict:
        """A JSON-serializable dict; :meth:`from_dict` reverses it."""
        out = asdict(self)
        out["encoders"] = self.encoders.to_dict()
        shape = self.input_shape
        out["input_shape"] = ({k: list(v) for k, v in shape.items()} if isinstance(shape, dict) else list(shape))
        out["label_shape"] = list(self.label_shape)
        if out["streamed"] is None:  # in-memory runs' files stay as they were
            del out["streamed"]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        """Rebuild a DataInfo from :meth:`to_dict`'s output (e.g. read back from JSON).

        Raises:
            KeyError: a field is missing.
            RunDirError: ``encoders`` has a key :class:`EncoderState` does not know.
        """
        shape = d["input_shape"]
        return cls(
            source=d["source"],
            task=d["task"],
            num_classes=d["num_classes"],
            class_names=d["class_names"],
            feature_names=d["feature_names"],
            input_shape=({k: tuple(v) for k, v in shape.items()} if isinstance(shape, dict) else tuple(shape)),
            encoders=EncoderState.from_dict(d["encoders"]),
            vocab_sizes=d.get("vocab_sizes"),  # absent in runs made before it existed
            label_shape=tuple(d.get("label_shape", ())),  # likewise
            task_reason=d.get("task_reason"),  # likewise
            streamed=d.get("streamed"),  # likewise
        )


@dataclass(frozen=True)
class Splits:
    """The train, validation and test splits of one data config, and what they hold."""

    train: Split
    val: Split | None
    test: Split | None
    info: DataInfo

    def subset(self, train: int, evaluate: int) -> Splits:
        """The first ``train`` training rows and first ``evaluate`` validation/test rows (``--smoke``)."""
        return Splits(
            train=self.train.head(train),
            val=self.val.head(evaluate) if self.val is not None else None,
            test=self.test.head(evaluate) if self.test is not None else None,
            info=self.info,
        )


def streams(cfg: DataConfig) -> bool:
    """Whether ``cfg`` streams from files (:class:`fmtrain.data.tfrecord.Streams`) instead of arrays: the
    ``tfrecord`` and ``parquet`` sources, ``csv`` with ``stream: true``. Such a config has ``build_streams``."""
    return bool(getattr(cfg, "streams", False))


def build(cfg: DataConfig, *, seed: int, encoders: EncoderState | dict | None = None) -> Splits | tfrecord.Streams:
    """Load ``cfg.source``, split it and encode it.

    Args:
        cfg: the validated ``data`` section.
        seed: seeds every random split; the same seed gives the same rows in each split.
        encoders: ``DataInfo.encoders`` of a previous run (or its JSON form from an older
            ``data_info.json``). Its vocabularies and label mapping are reused, not refitted, so
            eval data is encoded like the training data.

    Returns:
        The splits (a streamed source's :class:`~fmtrain.data.tfrecord.Streams`, see :func:`streams`);
        ``val`` is None when ``validation_split`` is 0, ``test`` is None when
        ``test_split`` is 0 and the source has no test split of its own.

    Raises:
        DataError: the data cannot be read, does not fit the config, or a split is empty.
        RunDirError: ``encoders`` is a dict with a key :class:`EncoderState` does not know.
    """
    if encoders is None:
        encoders = EncoderState()
    elif isinstance(encoders, dict):
        encoders = EncoderState.from_dict(encoders)
    if streams(cfg):
        return cfg.build_streams(seed=seed, encoders=encoders)
    loaded = sources.load(cfg, encoders)
    if len(loaded.y) == 0:
        raise DataError(f"{loaded.source}: no training examples; data.path must hold at least one row")
    classification = loaded.task == "classification"
    plan = splits.plan_splits(cfg, len(loaded.y), seed=seed, labels=loaded.y if classification else None,
                              own_test=loaded.test is not None, users=loaded.users, times=loaded.times)
    # Fitted on the training rows only: a category or id seen only in validation/test is unknown.
    encoder = loaded.feature_encoder
    if encoder is not None:
        encoder = encoder.fitted(splits.take(loaded.x, plan.train))

    def split(x, y, index: splits.Index | None = None) -> Split:
        if index is not None:
            x, y = splits.take(x, index), y[index]
        return Split(encoder.transform(x) if encoder else x, y)

    train = split(loaded.x, loaded.y, plan.train)
    val = split(loaded.x, loaded.y, plan.val) if plan.val is not None else None
    test = split(*loaded.test) if loaded.test is not None else (
        split(loaded.x, loaded.y, plan.test) if plan.test is not None else None)

    x = train.x
    input_shape = ({k: tuple(v.shape[1:]) for k, v in x.items()} if isinstance(x, dict) else tuple(x.shape[1:]))
    num_classes = len(loaded.class_names) if classification and loaded.class_names is not None else None
    info = DataInfo(
        source=loaded.source,
        task=loaded.task,
        num_classes=num_classes,
        class_names=list(loaded.class_names) if classification and loaded.class_names else None,
        feature_names=(encoder.feature_names if encoder else None) or loaded.feature_names,
        input_shape=input_shape,
        encoders=encoder.add_to(loaded.label_state) if encoder else loaded.label_state,
        vocab_sizes=encoder.vocab_sizes if encoder else None,
        label_shape=tuple(train.y.shape[1:]),
        task_reason=loaded.task_reason,
    )
    return Splits(train, val, test, info)
