"""The index of fmtrain's components: importing it registers every one of them.

Each data source, preprocessing step, model type, loss and metric declares its params model next to
its implementation and registers it, with that model, in its registry. This module imports each
family once and hands out the registries; the config schema builds its tagged unions and name checks
from them, so it never imports an implementation itself, and what ``fmtrain validate`` accepts is
what the loaders and builders read. No component imports this module or the schema.

Importing it imports numpy and pydantic, never TensorFlow, Keras or scikit-learn.
"""

from __future__ import annotations

import fmtrain.data  # noqa: F401  (its package registers every data source module)
import fmtrain.models  # noqa: F401  (its package registers every model family, and their losses and metrics)
from fmtrain.data.sources import SOURCES
from fmtrain.losses import LOSSES
from fmtrain.metrics import METRICS
from fmtrain.models.registry import MODELS
from fmtrain.preprocess import STEPS

__all__ = ["LOSSES", "METRICS", "MODELS", "SOURCES", "STEPS"]
