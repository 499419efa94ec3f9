"""The model-type registry, the base of every model type's params, and the output a task needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from fmtrain.config.base import StrictModel
from fmtrain.registry import Registry

MODELS: Registry[Callable[..., Any]] = Registry("model type")


class ModelParams(StrictModel):
    """The ``model`` section of one model type: ``type`` picks it; each type adds its own keys.

    The class variables say how a model type trains when the config leaves it open; fit, eval and
    ``build_model`` read them from ``cfg.model`` instead of probing for them.
    """

    type: str
    """The registered model type (`fmtrain list models`)."""

    default_loss: ClassVar[str] = "auto"
    """The loss ``loss: auto`` means for this type (auto: from the task)."""
    required_losses: ClassVar[tuple[str, ...]] = ()
    """The only losses this type trains with (empty: any that fits the labels)."""
    default_metrics: ClassVar[tuple[str, ...] | None] = None
    """The metrics ``metrics: [auto]`` means for this type (None: from the task)."""
    uses_vocab_sizes: ClassVar[bool] = False
    """The builder takes ``vocab_sizes`` (ids per id input), so ``build_model`` passes them on."""

    def encode_splits(self, splits, model=None):
        """The splits as this model type reads them (default: unchanged). ``hub`` text classifiers
        tokenize here, once, with the preset's preprocessor — or, given a run's loaded ``model``, with
        the one saved inside it; fit, resume and eval call it right after ``data.build``."""
        return splits

    def encode_inputs(self, x, model):
        """One array (or dict of arrays) of raw examples as the run's loaded ``model`` reads them, as
        :meth:`encode_splits` encodes a split (default: unchanged); for ``fmtrain predict``."""
        return x


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
