"""Reports for a run directory: report.md/html, plots, per-class summaries, console tables.

Names are imported on first use, so ``import fmtrain.report`` stays cheap (matplotlib,
scikit-learn, Jinja2 and rich load only inside the functions that need them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmtrain.report.classification import classification_summary as classification_summary
    from fmtrain.report.compare import write_comparison as write_comparison
    from fmtrain.report.console import print_eval as print_eval
    from fmtrain.report.console import print_fit_summary as print_fit_summary
    from fmtrain.report.details import write_fit_details as write_fit_details
    from fmtrain.report.document import write_report as write_report

_EXPORTS = {
    "classification_summary": "fmtrain.report.classification",
    "print_eval": "fmtrain.report.console",
    "print_fit_summary": "fmtrain.report.console",
    "write_comparison": "fmtrain.report.compare",
    "write_fit_details": "fmtrain.report.details",
    "write_report": "fmtrain.report.document",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fmtrain.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
