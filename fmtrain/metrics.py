"""Metric names fmtrain resolves itself, and how every configured metric becomes a Keras metric.

``accuracy`` picks sparse, categorical or binary accuracy from the labels and the output;
``precision``, ``recall`` and ``f1`` work on multi-class outputs with sparse labels (macro,
micro or weighted averages, from a confusion matrix kept in the graph); any other name goes
to ``keras.metrics.get``. Keras is imported only inside the builders.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fmtrain.errors import ConfigError
from fmtrain.registry import Registry

METRICS: Registry[Callable[..., Any]] = Registry("metric")
AVERAGES = ("macro", "micro", "weighted", "binary")


@dataclass(frozen=True)
class MetricContext:
    """What a metric needs to know about the labels and the model output."""

    task: str
    num_classes: int | None
    one_hot_labels: bool
    output_units: int
    from_logits: bool = False
    """The model outputs logits (the loss says ``from_logits: true``): one unit is positive above 0, not 0.5."""
    task_reason: str | None = None
    """Why the data layer chose the task (``DataInfo.task_reason``), for errors that depend on it."""

    @property
    def one_logit(self) -> bool:
        return self.from_logits and self.output_units == 1


def _confusion(statistic: str):
    def build(args: dict, ctx: MetricContext):
        from fmtrain.engine.confusion import ConfusionMetric

        _require_classification(statistic, ctx)
        classes = ctx.num_classes or 2
        average = args.get("average", "binary" if classes == 2 else "macro")
        if average not in AVERAGES or (average == "binary" and classes != 2):
            choices = AVERAGES if classes == 2 else AVERAGES[:3]
            raise ConfigError(f"metrics.{statistic}.average: expected one of {list(choices)}, found '{average}'")
        metric_class = _on_probabilities(ConfusionMetric, "sigmoid") if ctx.one_logit else ConfusionMetric
        return metric_class(statistic, num_classes=classes, average=average, name=statistic)

    build.__doc__ = f"{statistic.capitalize()} from a confusion matrix: average binary|macro|micro|weighted."
    return build


for _statistic in ("precision", "recall", "f1"):
    METRICS.register(_statistic)(_confusion(_statistic))


@METRICS.register("accuracy")
def _accuracy(args: dict, ctx: MetricContext):
    """Share of correct predictions: sparse, categorical or binary, chosen from the labels."""
    import keras

    _require_classification("accuracy", ctx)
    if ctx.output_units == 1:
        return keras.metrics.BinaryAccuracy(name="accuracy", **{"threshold": 0.0 if ctx.one_logit else 0.5, **args})
    if ctx.one_hot_labels:
        return keras.metrics.CategoricalAccuracy(name="accuracy")
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


@METRICS.register("top_k")
def _top_k(args: dict, ctx: MetricContext):
    """Whether the true class is among the k highest scores (k: 5 by default)."""
    import keras

    _require_classification("top_k", ctx)
    k = int(args.get("k", 5))
    cls = keras.metrics.TopKCategoricalAccuracy if ctx.one_hot_labels else keras.metrics.SparseTopKCategoricalAccuracy
    return cls(k=k, name=f"top_{k}_accuracy")


@METRICS.register("auc")
def _auc(args: dict, ctx: MetricContext):
    """Area under the ROC (or PR, curve: PR) curve; multi-class is one-vs-rest."""
    import keras

    _require_classification("auc", ctx)
    if ctx.output_units == 1:
        return keras.metrics.AUC(name="auc", **{"from_logits": ctx.from_logits, **args})
    from fmtrain.engine.confusion import OneHotLabels

    # AUC's thresholds span 0..1: logits become softmax probabilities first.
    auc_class = _on_probabilities(keras.metrics.AUC, "softmax") if ctx.from_logits else keras.metrics.AUC
    inner = auc_class(name="auc", multi_label=False, **args)
    return inner if ctx.one_hot_labels else OneHotLabels(inner, ctx.output_units, name="auc")


@METRICS.register("rmse")
def _rmse(args: dict, ctx: MetricContext):
    """Root mean squared error."""
    import keras

    return keras.metrics.RootMeanSquaredError(name="rmse")


@functools.cache
def _on_probabilities(metric_class, activation: str):
    """``metric_class`` fed probabilities (``activation`` of the logits) instead of logits."""
    import keras

    to_probabilities = getattr(keras.ops, activation)

    class OnProbabilities(metric_class):
        def update_state(self, y_true, y_pred, sample_weight=None):
            return super().update_state(y_true, to_probabilities(y_pred), sample_weight=sample_weight)

    OnProbabilities.__name__ = f"{metric_class.__name__}OnProbabilities"
    return OnProbabilities


def _require_classification(name: str, ctx: MetricContext) -> None:
    if ctx.task != "classification":
        why = f": {ctx.task_reason}" if ctx.task_reason else ""
        if "data.task" not in why:
            why += "; set data.task: classification if the labels are classes, or choose a regression metric"
        raise ConfigError(f"metrics: '{name}' needs class labels, but the task is {ctx.task}{why}")


def default_metric_names(task: str) -> list[str]:
    """The metrics ``auto`` stands for."""
    return ["accuracy"] if task == "classification" else ["mae"]


def _build_one(name: str, args: dict, ctx: MetricContext):
    if name in METRICS:
        return METRICS.get(name).build(args, ctx)
    metric_class = keras_metric_class(name)
    if metric_class is None:
        raise ConfigError(f"metrics.{name}: Keras has this only as a function, not as a streaming metric")
    try:
        return metric_class(name=name, **args)
    except TypeError as exc:
        raise ConfigError(f"metrics.{name}: {exc}") from exc


def build_metrics(configured: list, ctx: MetricContext, defaults: tuple[str, ...] | None = None) -> list[Any]:
    """Turn ``Config.metrics`` into Keras metric objects with unique names.

    ``auto`` stands for ``defaults`` (a model type's own) or the task's defaults.

    Raises:
        ConfigError: a metric does not fit the task, or Keras rejects its arguments.
    """

    items: list[tuple[int, str, dict]] = []
    for index, metric in enumerate(configured):
        if metric.name == "auto":
            items += [(index, name, {}) for name in (defaults or default_metric_names(ctx.task))]
        else:
            items.append((index, metric.name, dict(metric.args)))
    built = []
    for index, name, args in items:
        try:
            built.append(_build_one(name, args, ctx))
        except ConfigError as exc:  # name the list item, as validation errors do: metrics.1.f1.average
            message = str(exc)
            key, _, rest = message.partition(":")
            if key == "metrics" or key.startswith("metrics."):
                message = f"metrics.{index}{key.removeprefix('metrics')}:{rest}"
            raise ConfigError(message) from None
    names = [m.name for m in built]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"metrics: {duplicates} configured more than once")
    return built


def keras_metric_class(name: str):
    """The Keras metric class for a snake-case name ('mae' → MeanAbsoluteError), without
    instantiating it (keras.metrics.get does, which fails for metrics with required arguments)."""
    import keras
    from keras.src.metrics import ALL_OBJECTS_DICT  # the table keras.metrics.get reads

    found = ALL_OBJECTS_DICT.get(name)
    return found if inspect.isclass(found) and issubclass(found, keras.metrics.Metric) else None
