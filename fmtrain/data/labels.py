"""Raw labels → class ids or regression targets, and why the task is what it is.

``data.task: auto`` lets the labels decide: strings and integers are classes, floats are numbers
to predict. That guess is silent when a class column was saved as ``0.0, 1.0, 2.0``, so every
encoding also says *why* it chose its task (:attr:`Labels.task_reason`, saved as
``DataInfo.task_reason``), and suggests ``data.task: classification`` when float labels look like
class ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from fmtrain.data.encoding import EncoderState
from fmtrain.data.tabular import is_number
from fmtrain.errors import DataError
from fmtrain.registry import describe_choices, did_you_mean

FEW_CLASSES = 20
"""Float labels with at most this many distinct whole-number values may be class ids..."""
FEW_CLASSES_FRACTION = 0.05
"""...when there are also fewer distinct values than this fraction of the rows (each repeats often)."""

KEPT_FROM_RUN = "kept from the trained run (data_info.json: encoders.task)"


def configured(task: str) -> str:
    """The reason for a task written in the config."""
    return f"set in the config (data.task: {task})"


@dataclass(frozen=True)
class Labels:
    """Labels ready for Keras, the state that reproduces their encoding, and why the task is what it is."""

    y: np.ndarray
    task: str
    class_names: list[str] | None
    state: EncoderState
    """Only the label fields (task, num_classes, label_classes) are set."""
    task_reason: str
    """One sentence for the user, e.g. ``"label column 'species' holds strings, taken as 3 class names"``."""


def encode_labels(values: np.ndarray, *, task: str, saved: EncoderState, where: Callable[[int], str],
                  name: str) -> Labels:
    """Map raw labels to int32 class ids 0..K-1 (classification) or float32 targets (regression).

    Args:
        values: raw labels; strings, integers, floats or booleans.
        task: ``cfg.task``; ``"auto"`` picks classification for strings and integers, regression for floats.
        saved: state from a previous run; its ``task``, ``label_classes`` and ``num_classes``
            are reused instead of being inferred again.
        where: describes row ``i`` for messages, e.g. ``"/abs/file.csv:12"``.
        name: the labels as the user knows them, e.g. ``"label column 'class'"``, for the task reason.

    Raises:
        DataError: labels that cannot be encoded for the task, naming the first bad row.
    """
    import numpy as np

    if saved.task is not None:
        task, reason = saved.task, KEPT_FROM_RUN
    else:
        reason = configured(task) if task != "auto" else None
    known_classes = saved.label_classes
    known_count = saved.num_classes
    booleans = values.dtype.kind == "b"
    if booleans:
        values = values.astype(np.int64)
    kind = values.dtype.kind

    if kind in "US":
        values = values.astype(str)
        if task == "regression":
            i = next((i for i, v in enumerate(values) if not is_number(v)), 0)
            raise DataError(
                f"{where(i)}: label '{values[i]}' is not a number but data.task is regression; "
                "fix the label or set data.task: classification"
            )
        if known_count is not None and known_classes is None:
            raise DataError(
                f"{where(0)}: labels are names ('{values[0]}') but the model was trained on "
                f"integer class ids 0..{known_count - 1}; use the same label column as in training"
            )
        classes = list(known_classes) if known_classes is not None else sorted(set(values.tolist()))
        index = {c: i for i, c in enumerate(classes)}
        y = np.empty(len(values), dtype=np.int32)
        for i, value in enumerate(values.tolist()):
            if value not in index:
                raise DataError(
                    f"{where(i)}: label '{value}' is not one of the {len(classes)} classes seen in "
                    f"training{did_you_mean(value, classes)}: {describe_choices(classes)}"
                )
            y[i] = index[value]
        state = EncoderState(task="classification", num_classes=len(classes), label_classes=classes)
        return Labels(y, "classification", classes, state,
                      reason or f"{name} holds strings, taken as {len(classes)} class names")

    if kind == "f":
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
        if bad.size:
            raise DataError(f"{where(int(bad[0]))}: label is {values[bad[0]]}; labels must be finite numbers")
        if task == "classification":
            values = _class_column(values, where)
            fractional = np.flatnonzero(values.round() != values)
            if fractional.size:
                i = int(fractional[0])
                raise DataError(
                    f"{where(i)}: label {values[i]} is not an integer class id; "
                    "classification labels must be 0..K-1 (or set data.task: regression)"
                )
            values, kind = values.astype(np.int64), "i"

    if kind in "iu" and task != "regression":
        values = _class_column(values, where)
        if known_classes is not None:
            raise DataError(
                f"{where(0)}: labels are integers but the model was trained on class names "
                f"{describe_choices(known_classes)}; use the same label column as in training"
            )
        if values.size and values.min() < 0:
            i = int(np.argmin(values))
            raise DataError(
                f"{where(i)}: label {values[i]} is negative; class ids must be 0..K-1 "
                "(or set data.task: regression if the labels are numbers to predict)"
            )
        count = int(values.max()) + 1 if values.size else 0
        if known_count is not None:
            if count > known_count:
                i = int(np.argmax(values))
                raise DataError(
                    f"{where(i)}: label {values[i]} is beyond the {known_count} classes seen in training "
                    f"(0..{known_count - 1})"
                )
            count = known_count
        inferred = (f"{name} holds true/false values, taken as classes 0 and 1" if booleans else
                    f"{name} holds integers, taken as class ids 0..{count - 1}; "
                    "set data.task: regression to predict them as numbers")
        return Labels(values.astype(np.int32), "classification", [str(i) for i in range(count)],
                      EncoderState(task="classification", num_classes=count), reason or inferred)

    if kind in "iuf":
        return Labels(values.astype(np.float32), "regression", None, EncoderState(task="regression"),
                      reason or _why_regression(values, name))
    raise DataError(f"{where(0)}: labels of dtype {values.dtype} are neither numbers nor strings")


def _why_regression(values: np.ndarray, name: str) -> str:
    """Why ``task: auto`` made float labels a regression, suggesting classification when they look like classes."""
    import numpy as np

    if values.ndim == 2 and values.shape[1] > 1:
        return f"{name} holds {values.shape[1]} float columns, so the task is regression (one target per column)"
    column = values.reshape(-1)
    distinct = np.unique(column)
    if np.all(distinct.round() == distinct) and len(distinct) <= FEW_CLASSES and \
            len(distinct) < FEW_CLASSES_FRACTION * len(column):
        shown = ", ".join(f"{v:.1f}" for v in distinct[:5]) + (", …" if len(distinct) > 5 else "")
        return (f"{name} is float with {len(distinct)} distinct values ({shown}), so the task is regression; "
                "set data.task: classification if they are classes")
    return f"{name} holds float numbers ({len(distinct)} distinct values), so the task is regression"


def _class_column(values: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 1:
        return values.reshape(-1)
    if values.ndim != 1:
        raise DataError(
            f"{where(0)}: class labels have shape {values.shape}; expected one class id per example, "
            "shape (n,) or (n, 1) (one-hot labels: store np.argmax(y, axis=1))"
        )
    return values
