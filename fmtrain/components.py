"""The index of fmtrain's components: importing it registers every one of them.

Each data source, preprocessing step, model type, loss and metric declares its params model next to
its implementation and registers it, with that model, in its registry. This module imports each
family once and hands out the registries; the config schema builds its tagged unions and name checks
from them, so it never imports an implementation itself, and what ``fmtrain validate`` accepts is
what the loaders and builders read. No component imports this module or the schema.

Importing it imports numpy and pydantic, never TensorFlow, Keras or scikit-learn.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

import fmtrain.data  # noqa: F401  (its package registers every data source module)
import fmtrain.models  # noqa: F401  (its package registers every model family, and their losses and metrics)
from fmtrain.config.base import StrictModel
from fmtrain.data.sources import SOURCES
from fmtrain.losses import LOSSES
from fmtrain.metrics import METRICS
from fmtrain.models.registry import MODELS
from fmtrain.preprocess import STEPS
from fmtrain.registry import Registry

__all__ = ["LOSSES", "METRICS", "MODELS", "SOURCES", "STEPS", "listed", "loss_params", "metric_params"]


def listed() -> dict[str, Registry]:
    """What ``fmtrain list`` lists (its ``LISTS``, in :mod:`fmtrain.config.schema_cache`): kind → registry."""
    return {"models": MODELS, "sources": SOURCES, "preprocess": STEPS, "metrics": METRICS}


# The arguments of fmtrain's own metrics. Their builders take ``(args, ctx)``, so no signature
# tells, and they are registered without ``params=``; until each is (next to its builder, in
# fmtrain/metrics.py and fmtrain/models/recommenders.py), these say what validate accepts.
# A registered params model wins over this table.


class AverageParams(StrictModel):
    average: Literal["binary", "macro", "micro", "weighted"] = "macro"
    """macro, micro or weighted over the classes; binary (two classes only) scores class 1.
    Default: binary for two classes, macro otherwise."""


class AccuracyParams(StrictModel):
    threshold: float = 0.5
    """One output unit: scores above it count as class 1 (default 0.5, or 0 for logits; unused with softmax)."""


class TopKParams(StrictModel):
    k: int = Field(5, ge=1)
    """The true class counts if it is among the k highest scores."""


class AucParams(StrictModel):
    num_thresholds: int = Field(200, gt=1)
    """Thresholds the curve is sampled at."""
    curve: Literal["ROC", "PR", "roc", "pr"] = "ROC"
    """ROC: true vs false positive rate; PR: precision vs recall."""
    summation_method: Literal["interpolation", "minoring", "majoring"] = "interpolation"
    """How the area is summed between thresholds."""
    thresholds: list[float] | None = None
    """Explicit thresholds in (0, 1) instead of num_thresholds evenly spaced ones."""
    from_logits: bool = False
    """The model outputs logits rather than probabilities."""


class NoParams(StrictModel):
    """Takes no arguments."""


class RecallAtKParams(StrictModel):
    k: int = Field(10, ge=1)
    """The positive counts if it ranks among the top k of its batch row."""


_METRIC_PARAMS: dict[str, type[BaseModel]] = {
    "precision": AverageParams, "recall": AverageParams, "f1": AverageParams, "accuracy": AccuracyParams,
    "top_k": TopKParams, "auc": AucParams, "rmse": NoParams, "recall_at_k": RecallAtKParams,
}


@functools.cache
def metric_params(name: str) -> type[BaseModel]:
    """The params model of fmtrain's metric ``name``: the one it registered, else the table above.

    Raises:
        KeyError: a registered metric that declares no params (add it to the table or register its params).
    """
    return METRICS.get(name).params or _METRIC_PARAMS[name]


@functools.cache
def loss_params(name: str) -> type[BaseModel]:
    """The params model of fmtrain's loss ``name``: the one it registered, else its builder's signature
    (a loss builder takes the loss's arguments as keywords)."""
    entry = LOSSES.get(name)
    if entry.params is not None:
        return entry.params
    hints = typing.get_type_hints(entry.build)
    fields: dict[str, Any] = {
        key: (hints.get(key, Any), ... if parameter.default is parameter.empty else parameter.default)
        for key, parameter in inspect.signature(entry.build).parameters.items()
        if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    }
    return create_model(f"{name.title().replace('_', '')}Params", __base__=StrictModel, **fields)
