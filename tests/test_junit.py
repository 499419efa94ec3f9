"""``--junit-xml`` on fit and eval: one test case per --expect threshold and per --smoke stage, the
measured value and the threshold in each failure; in GitHub Actions a Markdown summary appended to
$GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmtrain.errors import DataError, ExpectationFailed, TrainingFailed
from fmtrain.integrations.junit import SMOKE_STAGES, SmokeStages

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "## an earlier step's summary\n"


def _cases(xml_path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    suite = ET.parse(xml_path).getroot().find("testsuite")
    return suite, {case.get("name"): case for case in suite.iter("testcase")}


def _outcome(case: ET.Element) -> str:
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        if case.find(tag) is not None:
            return outcome
    return "passed"


@pytest.fixture(scope="module")
def smoke_fit(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from fmtrain.cli import app

    tmp = tmp_path_factory.mktemp("junit")
    summary = tmp / "summary.md"
    summary.write_text(PREVIOUS)
    run_dir, xml_path = tmp / "run", tmp / "reports" / "fit.xml"
    old = os.environ.get("GITHUB_STEP_SUMMARY")
    os.environ["GITHUB_STEP_SUMMARY"] = str(summary)
    try:
        result = CliRunner().invoke(app, [
            "fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(run_dir), "--smoke", "--quiet",
            "--expect", "test.accuracy>=0.05", "--expect", "val_loss<0.0001", "--junit-xml", str(xml_path)])
    finally:
        os.environ.pop("GITHUB_STEP_SUMMARY") if old is None else os.environ.__setitem__("GITHUB_STEP_SUMMARY", old)
    return run_dir, xml_path, summary, result


@pytest.mark.tf
def test_fit_smoke_xml_has_each_stage_and_each_threshold_with_the_measured_value(smoke_fit):
    run_dir, xml_path, _, result = smoke_fit
    assert result.exit_code == 3, result.output  # a threshold missed: exit 3, and the XML says which
    final = json.loads((run_dir / "metrics.json").read_text())["final"]

    suite, cases = _cases(xml_path)
    assert list(cases) == [*SMOKE_STAGES, "test.accuracy>=0.05", "val_loss<0.0001"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("7", "1", "0")
    assert all(_outcome(cases[stage]) == "passed" for stage in SMOKE_STAGES)
    assert cases["data"].get("classname").endswith(".smoke") and float(cases["fit"].get("time")) > 0
    assert _outcome(cases["test.accuracy>=0.05"]) == "passed"
    failure = cases["val_loss<0.0001"].find("failure")
    assert failure.get("message") == f"val.loss = {final['val']['loss']:.4f}, expected <0.0001"


@pytest.mark.tf
def test_step_summary_is_appended_with_the_metrics_and_the_checks(smoke_fit):
    run_dir, _, summary, _ = smoke_fit
    text = summary.read_text()
    final = json.loads((run_dir / "metrics.json").read_text())["final"]

    assert text.startswith(PREVIOUS)  # appended, not overwritten
    assert "### fmtrain fit digits_mlp" in text
    assert f"| test | {final['test']['loss']:.4f} | {final['test']['accuracy']:.4f} |" in text
    assert "| expect: `val_loss<0.0001` | ❌ FAIL |" in text and "| smoke: `reload` | ✅ pass |" in text


@pytest.mark.tf
def test_eval_xml_shows_a_pass_and_a_fail_and_appends_to_the_summary(smoke_fit, tmp_path, monkeypatch):
    from fmtrain.cli import app

    run_dir, _, summary, _ = smoke_fit
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    xml_path = tmp_path / "eval.xml"
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--quiet", "--expect", "accuracy>=0.05",
                                      "--expect", "loss<0.0001", "--junit-xml", str(xml_path)])

    assert result.exit_code == 3, result.output
    measured = json.loads((run_dir / "eval-test.json").read_text())["metrics"]
    suite, cases = _cases(xml_path)
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert _outcome(cases["accuracy>=0.05"]) == "passed"
    failure = cases["loss<0.0001"].find("failure")
    assert failure.get("message") == f"test.loss = {measured['loss']:.4f}, expected <0.0001"
    text = summary.read_text()
    assert text.startswith(PREVIOUS) and text.count("### fmtrain ") == 2


@pytest.mark.tf
def test_a_fit_that_fails_before_training_still_writes_the_xml(tmp_path):
    pytest.importorskip("tensorflow")
    from fmtrain.cli import app

    xml_path = tmp_path / "fit.xml"
    result = CliRunner().invoke(app, ["fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(tmp_path / "r"),
                                      "--expect", "test.acuracy>=0.9", "--junit-xml", str(xml_path)])

    assert result.exit_code == 2
    suite, cases = _cases(xml_path)
    assert _outcome(cases["fit"]) == "error" and "no metric 'acuracy'" in cases["fit"].find("error").get("message")
    assert _outcome(cases["test.acuracy>=0.9"]) == "skipped"


def _stages(began: bool, ended: bool) -> SmokeStages:
    stages = SmokeStages()
    if began:
        stages.on_train_begin({})
    if ended:
        stages.on_train_end([])
    return stages


@pytest.mark.parametrize("began, ended, model_written, error, failed", [
    (False, False, False, DataError("data.path: x.csv: missing"), "data"),
    (True, False, False, TrainingFailed("loss became NaN"), "fit"),
    (True, True, False, OSError("disk full"), "save"),
    (True, True, True, TrainingFailed("the reloaded model predicts differently"), "reload"),
    (True, True, True, DataError("eval: shape"), "eval"),
    (True, True, True, ExpectationFailed("expectation missed"), None),
])
def test_the_failed_smoke_stage_is_told_by_what_was_reached(tmp_path, began, ended, model_written, error, failed):
    stages = _stages(began, ended)
    if model_written:
        time.sleep(0.01)
        (tmp_path / "model.keras").write_bytes(b"model")

    results = stages.results(tmp_path, error)

    assert [r.name for r in results] == list(SMOKE_STAGES)
    where = SMOKE_STAGES.index(failed) if failed else len(SMOKE_STAGES)
    assert [r.outcome for r in results] == (["passed"] * where + ["failed"] * (failed is not None)
                                            + ["skipped"] * (len(SMOKE_STAGES) - where - 1))[:len(SMOKE_STAGES)]
    if failed:
        assert str(error) in results[where].message
