"""Where a run reports besides its run directory: TensorBoard event files, MLflow, JUnit XML and
GitHub's step summary.

The names below load their module on first use, so the CLI can name them without importing
TensorFlow or MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fmtrain.integrations.tensorboard import TensorBoardCallback

_MODULE_OF = {"TensorBoardCallback": "tensorboard"}

__all__ = ["TensorBoardCallback"]


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"fmtrain.integrations.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'fmtrain.integrations' has no attribute '{name}'")
