"""What ``fmtrain export`` is asked to do, checked before anything heavy is imported.

The command module imports this at start-up (for ``--help`` and the option checks) and the exporting
machinery (:mod:`fmtrain.export`) only when it runs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from fmtrain.errors import ConfigError
from fmtrain.registry import did_you_mean

FORMATS = ("saved_model", "tflite", "onnx")
ONNX_INSTALL = "pip install 'fmtrain[onnx]'"


@dataclass
class ExportOptions:
    format: str
    output: Path | None = None
    """Where the export goes (default: ``<run>/export/saved_model``, ``model.tflite`` or ``model.onnx``)."""
    tolerance: float = 1e-4
    """Largest absolute difference from the Keras model's outputs that passes (float32 arithmetic)."""
    samples: int = 256
    """Examples of the run's data the parity check runs on (test split, else validation, else training)."""
    overwrite: bool = False
    unsafe: bool = False
    device: str = "auto"
    verbose: bool = False


def check_format(format: str) -> str:
    """``format`` lower-cased, once its packages are known to be installed.

    Raises:
        ConfigError: an unknown format, or ``onnx`` without tf2onnx/onnxruntime (with the install command).
    """
    format = format.lower()
    if format not in FORMATS:
        raise ConfigError(f"--format {format}: expected {', '.join(FORMATS)}{did_you_mean(format, FORMATS)}")
    if format == "onnx":
        missing = [name for name in ("tf2onnx", "onnxruntime") if not _installed(name)]
        if missing:
            raise ConfigError(f"--format onnx needs {' and '.join(missing)}, which "
                              f"{'is' if len(missing) == 1 else 'are'} not installed; run: {ONNX_INSTALL}")
    return format


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False
