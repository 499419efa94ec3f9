"""Model builders, registered by ``model.type``.

A builder receives its validated options, the (preprocessed) Keras input tensor and the
output the task needs, and returns the output tensor; :func:`build_model` wraps the result,
preprocessing layers included, into one ``keras.Model``. Importing this package never
imports Keras.
"""

from __future__ import annotations

from fmtrain.models import (  # noqa: F401
    applications,
    builders,  # noqa: F401  (registers the builders)
    functional,
    hub,
    multimodal,
    recommenders,
    text,
    vision,
)
from fmtrain.models.assemble import build_model, input_dtypes
from fmtrain.models.registry import MODELS, OutputSpec

__all__ = ["MODELS", "OutputSpec", "build_model", "input_dtypes", "ensure_custom_layers"]


def ensure_custom_layers() -> None:
    """Register fmtrain's custom Keras layers (imports Keras); call before loading a saved model."""
    import fmtrain.models.layers  # noqa: F401  (registration happens on import)
