"""Optimizers and learning-rate schedules from the ``optimizer`` section (imports Keras lazily)."""

from __future__ import annotations

import inspect

from fmtrain.errors import ConfigError
from fmtrain.registry import did_you_mean


def build_schedule(learning_rate, total_steps: int):
    """A float, or a Keras ``LearningRateSchedule`` for a schedule map.

    ``cosine`` without ``decay_steps`` decays over the rest of training (``total_steps``).
    """
    import keras

    if isinstance(learning_rate, (int, float)):
        return float(learning_rate)
    schedules = keras.optimizers.schedules
    if learning_rate.schedule == "exponential":
        return schedules.ExponentialDecay(
            learning_rate.initial, learning_rate.decay_steps, learning_rate.decay_rate,
            staircase=learning_rate.staircase,
        )
    if learning_rate.schedule == "piecewise":
        return schedules.PiecewiseConstantDecay(learning_rate.boundaries, learning_rate.values)
    warmup = learning_rate.warmup_steps
    decay = learning_rate.decay_steps or max(1, total_steps - warmup)
    if warmup:
        return schedules.CosineDecay(
            0.0, decay, alpha=learning_rate.alpha, warmup_target=learning_rate.initial, warmup_steps=warmup
        )
    return schedules.CosineDecay(learning_rate.initial, decay, alpha=learning_rate.alpha)


def optimizer_class_named(name: str):
    """The keras.optimizers class whose lower-cased name is ``name`` (keras.optimizers.get misses some, e.g. Lamb)."""
    import keras

    classes = {
        attribute.lower(): getattr(keras.optimizers, attribute)
        for attribute in dir(keras.optimizers)
        if inspect.isclass(getattr(keras.optimizers, attribute))
        and issubclass(getattr(keras.optimizers, attribute), keras.optimizers.Optimizer)
    }
    if name.lower() not in classes:
        raise ConfigError(f"optimizer.name: Keras has no optimizer '{name}'{did_you_mean(name, classes)}")
    return classes[name.lower()]


def build_optimizer(cfg, total_steps: int):
    """A Keras optimizer for the ``optimizer`` section.

    The schema already checked each argument's name and kind against the optimizer's signature
    (``keras_names.OPTIMIZER_ARGS``), so only values Keras itself refuses are left to fail here.

    Args:
        cfg: the validated ``OptimizerConfig``.
        total_steps: optimizer steps the whole run will take (for schedules' defaults).

    Raises:
        ConfigError: a value the optimizer rejects.
    """
    optimizer_class = optimizer_class_named(cfg.name)
    kwargs = dict(cfg.args)
    if cfg.clipnorm is not None:
        kwargs["clipnorm"] = cfg.clipnorm
    try:
        return optimizer_class(learning_rate=build_schedule(cfg.learning_rate, total_steps), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer: {optimizer_class.__name__} rejected its arguments: {exc}") from exc
