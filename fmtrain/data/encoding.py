"""What a run learns from its training data to encode examples, and the objects that do the encoding.

Two concepts that used to read alike:

- :class:`EncoderState` is *learned state*: the label mapping, csv columns and their categories,
  id vocabularies. It is plain data, saved in ``data_info.json`` under ``"encoders"`` and handed
  back to :func:`fmtrain.data.build` (``fmtrain eval``, ``fit --resume``) so new data is encoded
  exactly as the training data was.
- a :class:`FeatureEncoder` is the *fitted transformer* (``ColumnEncoder``, ``IdEncoder``): built by
  a loader, fitted on the training rows by ``build``, it turns raw columns into arrays and adds
  what it learned to an ``EncoderState``.

This module imports nothing heavier than the standard library, so every loader can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

from fmtrain.errors import RunDirError
from fmtrain.registry import describe_choices, did_you_mean

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class EncoderState:
    """State learned from the training rows that encodes new data the same way.

    Every field is None until something sets it; a fresh ``fit`` starts from ``EncoderState()``.
    Label fields come from the label encoding, ``columns``/``categories`` from a csv
    :class:`~fmtrain.data.tabular.ColumnEncoder`, ``vocabularies`` from an
    :class:`~fmtrain.data.ids.IdEncoder`. Treat the lists and dicts inside as read-only.
    """

    task: Task | None = None
    """The task the labels were encoded for; when set, it wins over ``data.task`` (a trained model's
    output cannot change). None for sources whose task is fixed (the bundled and keras sets)."""
    num_classes: int | None = None
    """Classification: the number of classes K; integer labels must be 0..K-1."""
    label_classes: list[str] | None = None
    """Classification with named labels: index i names class i. None when the labels were integer ids."""
    columns: list[str] | None = None
    """csv features: the feature columns, in the order of the trained model's input."""
    categories: dict[str, list[str]] | None = None
    """csv features: each one-hot column → its sorted vocabulary (``{}``: fitted, no categorical column)."""
    vocabularies: dict[str, list[list[str]]] | None = None
    """Id inputs (interactions' ``user``/``item``, records' ``category``): per input, one sorted
    vocabulary per column; value j of a vocabulary gets id offset + j + 1, 0 is unseen."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form saved in ``data_info.json``: only the fields that are set, as before this class."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderState:
        """Read the JSON form back; a missing key is None (files of earlier versions lack some).

        Raises:
            RunDirError: a key that is not a field (with the closest one), or a task that is neither
                classification nor regression.
        """
        known = [f.name for f in fields(cls)]
        for key in d:
            if key not in known:
                raise RunDirError(
                    f"data_info.json: encoders has an unknown key '{key}'{did_you_mean(key, known)}; "
                    f"the keys fmtrain reads are {describe_choices(known)} (was the file edited, or written "
                    "by a newer fmtrain?)"
                )
        task = d.get("task")
        if task not in (None, "classification", "regression"):
            raise RunDirError(f"data_info.json: encoders.task is {task!r}; expected 'classification' or 'regression'")
        return cls(**d)


class FeatureEncoder(Protocol):
    """A transformer of raw features fitted on the training rows (``ColumnEncoder``, ``IdEncoder``)."""

    def fitted(self, x: Any) -> FeatureEncoder:
        """An encoder fitted on ``x`` (the training rows), or self when built from a saved state."""

    def transform(self, x: Any) -> Any:
        """``x`` encoded as the model's input."""

    @property
    def feature_names(self) -> list[str] | None:
        """One name per output column, or None."""

    @property
    def vocab_sizes(self) -> dict[str, int] | None:
        """Ids per id input (the unseen id 0 included), or None when no input is ids."""

    def add_to(self, state: EncoderState) -> EncoderState:
        """``state`` with what this (fitted) encoder learned added."""
