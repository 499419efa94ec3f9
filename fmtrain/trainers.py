"""The one place a config, a model and its targets become a Trainer, for fit and eval alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fmtrain.losses import build_loss
from fmtrain.metrics import build_metrics

if TYPE_CHECKING:
    from fmtrain.config.schema import Config
    from fmtrain.engine.trainer import Trainer
    from fmtrain.targets import Targets


def build_trainer(cfg: Config, model, targets: Targets, optimizer=None) -> Trainer:
    """A Trainer with the config's loss, metrics and compile options.

    Args:
        cfg: the validated config.
        model: the Keras model (built for training, or loaded from a run).
        targets: the task's loss and output, resolved from the config and the data.
        optimizer: a Keras optimizer to train with; None for a trainer that only evaluates.
    """
    from fmtrain.engine.trainer import Trainer
    from fmtrain.targets import output_units

    metrics = build_metrics(cfg.metrics, targets.metric_context(output_units(model)), cfg.model.default_metrics)
    return Trainer(
        model, optimizer, build_loss(targets.loss_name, targets.loss_args), metrics,
        jit_compile=cfg.train.jit_compile, steps_per_execution=cfg.train.steps_per_execution,
        deterministic=cfg.train.deterministic, strict_compile=cfg.train.strict_compile,
    )
