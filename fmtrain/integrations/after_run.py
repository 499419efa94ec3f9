"""What ``fit`` and ``eval`` report once they end, besides the run directory: the MLflow run, the
JUnit XML and the GitHub step summary. Both run when the command fails too, so CI sees why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fmtrain.errors import ExpectationFailed, first_line
from fmtrain.expectations import Expectation, check_expectations
from fmtrain.integrations.junit import CheckResult, SmokeStages, expectation_results
from fmtrain.integrations.mlflow_log import MlflowLogged, log_finished_run
from fmtrain.integrations.step_summary import write_ci_reports
from fmtrain.runs import RunDir

if TYPE_CHECKING:
    from fmtrain.config.schema import Config


@dataclass
class FitReports:
    """Made before training (:attr:`callbacks` go to ``FitOptions.callbacks``); :meth:`finish` runs
    once ``fit`` returned or raised. ``path`` is the run directory fit writes."""

    cfg: Config
    path: Path
    expectations: list[Expectation]
    junit_xml: Path | None = None
    smoke: bool = False
    stages: SmokeStages | None = field(init=False)

    def __post_init__(self) -> None:
        self.stages = SmokeStages() if self.smoke and self.junit_xml is not None else None

    @property
    def callbacks(self) -> list:
        return [self.stages] if self.stages is not None else []

    def finish(self, error: BaseException | None) -> MlflowLogged | None:
        """Log a finished run (one whose ``--expect`` missed too) to MLflow; write the JUnit XML.

        Returns:
            Where MLflow logged the run, or None without ``report.mlflow`` or a finished run.
        """
        finished = error is None or isinstance(error, ExpectationFailed)
        logged = None
        if self.cfg.report.mlflow is not None and finished:
            logged = log_finished_run(self.path, self.cfg.report.mlflow, self.cfg.name)
        if self.junit_xml is not None:
            final = RunDir(self.path).read_metrics().final if finished else None
            results = self.stages.results(self.path, error) if self.stages is not None else []
            if not finished and self.stages is None:
                results.append(CheckResult("run", "fit", "error", first_line(error, 1000)))
            results += expectation_results(self.expectations, final, why_unchecked="not checked: fit did not finish")
            write_ci_reports(self.junit_xml, f"fmtrain fit {self.cfg.name}", final, results)
        return logged


def eval_reports(junit_xml: Path, suite: str, expectations: list[Expectation], split: str | None,
                 metrics: dict[str, float] | None, error: BaseException | None = None) -> list[str]:
    """Write the JUnit XML of an ``eval`` (``metrics`` of ``split``; None when it raised ``error``),
    then check the thresholds as ``evaluate_run`` would.

    Returns:
        The ``ok``/``FAIL`` lines of :func:`check_expectations`.

    Raises:
        ExpectationFailed: a threshold was missed (after the XML is written).
    """
    if metrics is None or split is None:
        write_ci_reports(junit_xml, suite, None, [
            CheckResult("run", "eval", "error", first_line(error, 1000) if error else "eval did not finish"),
            *expectation_results(expectations, None, why_unchecked="not checked: eval did not finish")])
        return []
    results = {split: metrics}
    write_ci_reports(junit_xml, suite, results, expectation_results(expectations, results, default=split))
    return check_expectations(expectations, results, split) if expectations else []
