"""Per-class precision, recall, F1 and the confusion matrix, as plain JSON-able data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fmtrain.errors import DataError


def classification_summary(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str] | None,
) -> dict[str, Any]:
    """Summarize integer class predictions against the true labels.

    Args:
        y_true: true class indices, shape ``(n,)``.
        y_pred: predicted class indices, shape ``(n,)`` (already arg-maxed).
        class_names: one name per class index; ``None`` names classes ``"0"``, ``"1"``, ...

    Returns:
        A JSON-able dict with ``class_names``, ``accuracy``, ``per_class`` (one entry per
        class: ``class``, ``precision``, ``recall``, ``f1``, ``support``), ``macro`` and
        ``weighted`` averages, and ``confusion_matrix`` (rows: true class, columns: predicted).

    Raises:
        ValueError: the two arrays differ in shape, are not 1-D, or are empty.
        DataError: a label falls outside ``range(len(class_names))``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D arrays of the same length, got shapes "
            f"{y_true.shape} and {y_pred.shape} (arg-max probabilities before calling)"
        )
    if y_true.size == 0:
        raise ValueError("cannot summarize an empty split: y_true has no samples")
    if class_names is None:
        class_names = [str(i) for i in range(int(max(y_true.max(), y_pred.max())) + 1)]
    names = [str(name) for name in class_names]
    k = len(names)
    # sklearn silently drops labels outside `labels=`; a dropped sample would make every
    # number in the report quietly wrong, so refuse instead.
    for which, values in (("true", y_true), ("predicted", y_pred)):
        bad = values[(values < 0) | (values >= k)]
        if bad.size:
            raise DataError(
                f"{which} label {bad[0].item()!r} is outside the {k} class names "
                f"(valid labels are 0..{k - 1}); check class_names against the data"
            )

    labels = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = [
        {
            "class": names[i],
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in labels
    ]
    return {
        "class_names": names,
        "accuracy": float(np.mean(y_true == y_pred)),
        "per_class": per_class,
        "macro": _average(y_true, y_pred, labels, "macro"),
        "weighted": _average(y_true, y_pred, labels, "weighted"),
        "confusion_matrix": matrix.astype(int).tolist(),
    }


def _average(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int], how: str) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=how, zero_division=0
    )
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
