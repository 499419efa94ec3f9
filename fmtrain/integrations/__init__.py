"""Where a run reports besides its run directory: TensorBoard event files, MLflow, JUnit XML and
GitHub's step summary.

The names below load their module on first use, so the CLI can name them without importing
TensorFlow or MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fmtrain.integrations.after_run import FitReports, eval_reports
    from fmtrain.integrations.junit import CheckResult, SmokeStages, expectation_results, write_junit_xml
    from fmtrain.integrations.mlflow_log import MlflowLogged, log_finished_run, require_mlflow
    from fmtrain.integrations.step_summary import append_step_summary, step_summary_path, write_ci_reports
    from fmtrain.integrations.tensorboard import TensorBoardCallback

_MODULE_OF = {
    "FitReports": "after_run", "eval_reports": "after_run",
    "TensorBoardCallback": "tensorboard",
    "MlflowLogged": "mlflow_log", "log_finished_run": "mlflow_log", "require_mlflow": "mlflow_log",
    "CheckResult": "junit", "SmokeStages": "junit", "expectation_results": "junit", "write_junit_xml": "junit",
    "append_step_summary": "step_summary", "step_summary_path": "step_summary", "write_ci_reports": "step_summary",
}

__all__ = [
    "CheckResult", "FitReports", "MlflowLogged", "SmokeStages", "TensorBoardCallback", "append_step_summary",
    "eval_reports", "expectation_results", "log_finished_run", "require_mlflow", "step_summary_path",
    "write_ci_reports", "write_junit_xml",
]


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"fmtrain.integrations.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'fmtrain.integrations' has no attribute '{name}'")
