"""The model-type registry and the description of the output a task needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fmtrain.registry import Registry

MODELS: Registry[Callable[..., Any]] = Registry("model type")


@dataclass(frozen=True)
class OutputSpec:
    """The final layer a task and loss need: ``units`` outputs with ``activation``."""

    units: int
    activation: str | None

    @classmethod
    def infer(cls, *, task: str, num_classes: int | None, loss: str, from_logits: bool = False,
              label_shape: tuple = ()) -> OutputSpec:
        """Choose the output layer from the task and the loss.

        Binary cross-entropy gets one sigmoid unit; other classification losses get one softmax
        unit per class (``from_logits`` losses get none); regression gets one linear unit per target.
        """
        if task == "classification":
            if loss in ("binary_crossentropy", "bce", "binary_focal_crossentropy") and (num_classes or 2) <= 2:
                return cls(1, None if from_logits else "sigmoid")
            return cls(int(num_classes or 2), None if from_logits else "softmax")
        units = int(label_shape[-1]) if label_shape else 1
        return cls(units, None)
