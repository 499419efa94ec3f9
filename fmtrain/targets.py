"""What the labels look like to the loss: derived once from the config and the data, for fit and eval alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fmtrain.errors import ConfigError, DataError
from fmtrain.losses import check_loss_fits_labels, resolve_loss_name
from fmtrain.metrics import MetricContext
from fmtrain.models.registry import OutputSpec
from fmtrain.preprocess import one_hot_classes

if TYPE_CHECKING:
    from fmtrain.config.schema import Config
    from fmtrain.data import DataInfo


@dataclass(frozen=True)
class Targets:
    """The loss, the output layer it needs, and how raw labels are shaped for them."""

    task: str
    num_classes: int | None
    loss_name: str
    loss_args: dict
    one_hot: int | None
    output: OutputSpec
    from_logits: bool = False
    """The loss reads the model's outputs as logits, so metrics must too."""
    task_reason: str | None = None
    """Why the data layer chose the task, for the errors that depend on it."""

    @classmethod
    def from_config(cls, cfg: Config, info: DataInfo) -> Targets:
        """Resolve ``loss: auto``, the one_hot step and the output layer.

        Raises:
            ConfigError: the loss does not fit the labels.
        """
        one_hot = one_hot_classes(cfg.preprocess, info)
        loss_name = cfg.loss.name
        if loss_name == "auto":
            loss_name = cfg.model.default_loss
        required = cfg.model.required_losses
        if required and loss_name not in required:
            raise ConfigError(f"loss: model type {cfg.model.type} trains with {' or '.join(required)}, not {loss_name}")
        loss_name = resolve_loss_name(loss_name, info.task, one_hot is not None)
        check_loss_fits_labels(loss_name, info.task, one_hot is not None, info.num_classes)
        label_shape = () if info.task == "classification" else tuple(info.label_shape)
        output = OutputSpec.infer(task=info.task, num_classes=info.num_classes, loss=loss_name,
                                  from_logits=cfg.loss.from_logits, label_shape=label_shape)
        return cls(info.task, info.num_classes, loss_name, dict(cfg.loss.args), one_hot, output, cfg.loss.from_logits,
                   info.task_reason)

    def shape_labels(self, y: np.ndarray, output_units: int) -> np.ndarray:
        """Raw labels → what the loss and metrics see (one-hot, or float columns, one per output unit).

        Raises:
            DataError: class ids outside what the output layer can predict, or regression targets
                with another number of columns than the output layer has units.
        """
        y = np.asarray(y)
        if self.task == "classification":
            classes = self.one_hot or output_units if output_units > 1 else 2
            if y.size and (y.min() < 0 or y.max() >= classes):
                raise DataError(
                    f"model: the data has {self.num_classes or int(y.max()) + 1} classes (labels "
                    f"{int(y.min())}..{int(y.max())}) but the model's output layer has {output_units} units; "
                    f"give the last layer units: {self.num_classes or int(y.max()) + 1}"
                )
            if self.one_hot:
                return np.eye(self.one_hot, dtype=np.float32)[y.astype(np.int64)]
            if output_units == 1:
                return y.astype(np.float32).reshape(-1, 1)
            return y.astype(np.int32)
        y = y.astype(np.float32)
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        if y.ndim == 2 and y.shape[1] != output_units:
            # The loss would broadcast one prediction against every column without a word.
            raise DataError(
                f"model: the data has {y.shape[1]} target column(s) per example but the model's output layer "
                f"has {output_units} unit(s); give the last layer units: {y.shape[1]}"
            )
        return y

    def metric_context(self, output_units: int) -> MetricContext:
        return MetricContext(self.task, self.num_classes, self.one_hot is not None, output_units, self.from_logits,
                             self.task_reason)


def output_units(model) -> int:
    """Width of the model's (single) output."""
    shape = model.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    return int(shape[-1]) if shape and shape[-1] is not None else 1
