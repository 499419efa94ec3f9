"""``--junit-xml PATH``: the checks of one ``fit`` or ``eval`` as JUnit XML, for CI systems.

One test case per ``--expect`` threshold (its failure message holds the measured value and the
threshold) and, with ``--smoke``, one per stage of the chain: data → fit → save → reload → eval.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fmtrain.engine.callbacks import Callback
from fmtrain.errors import ConfigError, ExpectationFailed, FmtrainError, TrainingFailed, first_line
from fmtrain.expectations import Expectation, check_expectations, default_split
from fmtrain.fileio import atomic_write_text

SMOKE_STAGES = ("data", "fit", "save", "reload", "eval")
"""What ``fit --smoke`` checks, in order: data loaded and model built; training; model.keras written;
the saved model reloads and predicts as the trained one; ``eval`` on the reloaded model."""

Outcome = Literal["passed", "failed", "error", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    """One test case."""

    group: str
    """``expect``, ``smoke`` or ``run``: the test case's class name after the suite's."""
    name: str
    outcome: Outcome
    message: str = ""
    """Why it failed, errored or was skipped."""
    measured: float | None = None
    threshold: str | None = None
    """``>=0.9``: the operator and the value, for expectations."""
    seconds: float = 0.0


def expectation_results(expectations: list[Expectation], results: dict[str, dict[str, float] | None] | None, *,
                        default: str | None = None, why_unchecked: str = "") -> list[CheckResult]:
    """Each expectation checked on its own against ``results[split][metric]`` (``check_expectations``
    decides, as for the exit code); all skipped when ``results`` is None (the run did not finish).

    ``default`` is the split an expectation without one is checked on (fit: test, else val, else train).
    """
    out = []
    present = [split for split, values in (results or {}).items() if values]
    for expectation in expectations:
        threshold = f"{expectation.op}{expectation.value:g}"
        if results is None or not present:
            out.append(CheckResult("expect", str(expectation), "skipped", why_unchecked or "not checked",
                                   threshold=threshold))
            continue
        split = expectation.split or default or default_split(present)
        measured = (results.get(split) or {}).get(expectation.metric)
        try:
            check_expectations([expectation], results, split)
        except ExpectationFailed:
            out.append(CheckResult("expect", str(expectation), "failed",
                                   f"{split}.{expectation.metric} = {measured:.4f}, expected {threshold}",
                                   measured=measured, threshold=threshold))
        except ConfigError as exc:
            out.append(CheckResult("expect", str(expectation), "error", str(exc), threshold=threshold))
        else:
            out.append(CheckResult("expect", str(expectation), "passed",
                                   f"{split}.{expectation.metric} = {measured:.4f}, expected {threshold}",
                                   measured=measured, threshold=threshold))
    return out


class SmokeStages(Callback):
    """Which stage of ``fit --smoke`` failed, told from what the trainer called and what the run
    directory holds: no training began → data; training did not end → fit; no fresh model.keras →
    save; a TrainingFailed after saving → reload (the only check that raises it there); else eval."""

    def __init__(self):
        self.created = time.time()
        self.began: float | None = None
        self.ended: float | None = None

    def on_train_begin(self, plan: dict) -> None:
        self.began = self.began or time.time()

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        self.ended = time.time()

    def results(self, run_path: Path, error: BaseException | None) -> list[CheckResult]:
        finished = time.time()
        if error is None or isinstance(error, ExpectationFailed):  # thresholds are checked after the chain
            failed = None
        elif self.began is None:
            failed = "data"
        elif self.ended is None:
            failed = "fit"
        elif not _written_since(Path(run_path) / "model.keras", self.ended - 1):
            failed = "save"
        else:
            failed = "reload" if isinstance(error, TrainingFailed) else "eval"
        seconds = {"data": (self.began or finished) - self.created,
                   "fit": (self.ended or finished) - self.began if self.began else 0.0}
        out, reached = [], True
        for stage in SMOKE_STAGES:
            if stage == failed:
                message = first_line(error, 1000) if isinstance(error, FmtrainError) else \
                    f"{type(error).__name__}: {first_line(error, 1000)}"
                out.append(CheckResult("smoke", stage, "failed", message, seconds=seconds.get(stage, 0.0)))
                reached = False
            elif reached:
                out.append(CheckResult("smoke", stage, "passed", seconds=seconds.get(stage, 0.0)))
            else:
                out.append(CheckResult("smoke", stage, "skipped", f"not reached: {failed} failed"))
        return out


def _written_since(path: Path, when: float) -> bool:
    return path.is_file() and path.stat().st_mtime >= when


def write_junit_xml(path: Path, suite: str, results: list[CheckResult]) -> Path:
    """Write ``results`` as one JUnit ``<testsuite>`` named ``suite`` (e.g. ``fmtrain fit digits_mlp``)."""
    counts = {kind: sum(r.outcome == kind for r in results) for kind in ("failed", "error", "skipped")}
    suites = ET.Element("testsuites")
    node = ET.SubElement(suites, "testsuite", name=suite, tests=str(len(results)), failures=str(counts["failed"]),
                         errors=str(counts["error"]), skipped=str(counts["skipped"]),
                         time=f"{sum(r.seconds for r in results):.3f}")
    for result in results:
        case = ET.SubElement(node, "testcase", classname=f"{suite}.{result.group}", name=result.name,
                             time=f"{result.seconds:.3f}")
        if result.outcome == "failed":
            ET.SubElement(case, "failure", message=result.message,
                          type="ExpectationFailed" if result.group == "expect" else "SmokeFailed").text = result.message
        elif result.outcome == "error":
            ET.SubElement(case, "error", message=result.message).text = result.message
        elif result.outcome == "skipped":
            ET.SubElement(case, "skipped", message=result.message)
        elif result.message:
            ET.SubElement(case, "system-out").text = result.message
    ET.indent(suites)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n")
    return path
