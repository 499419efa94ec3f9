"""``--expect`` thresholds: parsing, checking, and the exit code CI sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmtrain.errors import ConfigError, ExpectationFailed, FmtrainError
from fmtrain.expectations import Expectation, check_expectation_names, check_expectations, parse_expectation

ROOT = Path(__file__).resolve().parents[1]

RESULTS = {
    "train": {"loss": 0.1, "accuracy": 0.99},
    "val": None,
    "test": {"loss": 0.3, "accuracy": 0.96},
}


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("test.accuracy>=0.95", Expectation("test", "accuracy", ">=", 0.95)),
        ("loss<0.5", Expectation(None, "loss", "<", 0.5)),
        (" val.loss <= 1e-3 ", Expectation("val", "loss", "<=", 0.001)),
        ("train.top_k>.5", Expectation("train", "top_k", ">", 0.5)),
        ("mae==-1", Expectation(None, "mae", "==", -1.0)),
    ],
)
def test_parse(text, expected):
    assert parse_expectation(text) == expected


@pytest.mark.parametrize("text", ["test.accuracy>=0.95", "loss<0.5", "val.mae<=12"])
def test_an_expectation_prints_as_it_is_written(text):
    assert str(parse_expectation(text)) == text


@pytest.mark.parametrize("text", ["accuracy=0.9", "accuracy>=", ">=0.9", "accuracy >= 95%", "", "accuracy>=high"])
def test_bad_syntax_shows_the_expected_form(text):
    with pytest.raises(ConfigError) as info:
        parse_expectation(text)

    message = str(info.value)
    assert message.startswith(f"--expect '{text}':")
    assert "METRIC OP NUMBER" in message and "test.accuracy>=0.95" in message


def test_unknown_split_suggests_the_closest():
    with pytest.raises(ConfigError) as info:
        parse_expectation("tset.accuracy>=0.9")

    message = str(info.value)
    assert "unknown split 'tset'" in message and "did you mean 'test'" in message
    assert "train, val or test" in message


# --------------------------------------------------------------------------- checking


def test_met_expectations_return_one_ok_line_each():
    expectations = [parse_expectation("test.accuracy>=0.95"), parse_expectation("loss<0.5")]

    lines = check_expectations(expectations, RESULTS, default_split="test")

    assert len(lines) == 2
    assert lines[0].startswith("ok") and "test.accuracy = 0.9600" in lines[0] and ">=0.95" in lines[0]
    assert "test.loss = 0.3000" in lines[1]  # no split given: the default split


def test_expectation_without_split_uses_the_default_split():
    lines = check_expectations([parse_expectation("loss<0.2")], RESULTS, default_split="train")

    assert "train.loss = 0.1000" in lines[0]


@pytest.mark.parametrize(
    "text, met",
    [("test.accuracy>=0.96", True), ("test.accuracy>0.96", False), ("test.accuracy<=0.96", True),
     ("test.accuracy<0.96", False), ("test.accuracy==0.96", True)],
)
def test_boundaries_follow_the_operator(text, met):
    expectation = [parse_expectation(text)]

    if met:
        assert check_expectations(expectation, RESULTS, "test")[0].startswith("ok")
    else:
        with pytest.raises(ExpectationFailed):
            check_expectations(expectation, RESULTS, "test")


def test_missed_expectation_exits_3_and_reports_every_line():
    expectations = [parse_expectation(t) for t in ("test.accuracy>=0.97", "loss<0.5", "train.loss>1")]

    with pytest.raises(ExpectationFailed) as info:
        check_expectations(expectations, RESULTS, "test")

    assert info.value.exit_code == 3
    assert isinstance(info.value, FmtrainError)
    lines = str(info.value).splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["FAIL", "ok", "FAIL"]
    assert "test.accuracy = 0.9600" in lines[1] and "expected >=0.97" in lines[1]
    assert "train.loss = 0.1000" in lines[3]


def test_unknown_metric_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError) as info:
        check_expectations([parse_expectation("test.acuracy>=0.9")], RESULTS, "test")

    message = str(info.value)
    assert info.value.exit_code == 2
    assert "no metric 'acuracy' in test" in message
    assert "did you mean 'accuracy'" in message
    assert "loss, accuracy" in message


def test_split_the_run_does_not_have_is_a_config_error():
    with pytest.raises(ConfigError, match="no val split"):
        check_expectations([parse_expectation("val.loss<1")], RESULTS, "test")


# --------------------------------------------------------------------------- names as fmtrain prints them


@pytest.mark.parametrize(
    "text, split, metric",
    [("val_accuracy>=0.9", "val", "accuracy"), ("test_loss<100", "test", "loss"),
     ("train_top_5_accuracy>0.5", "train", "top_5_accuracy"), ("val.accuracy>=0.9", "val", "accuracy")],
)
def test_the_names_the_epoch_line_prints_are_accepted(text, split, metric):
    expectation = parse_expectation(text)

    assert (expectation.split, expectation.metric) == (split, metric)
    assert str(expectation) == text  # messages repeat what the user wrote


def test_prefixed_and_dotted_forms_check_the_same_value():
    results = {"val": {"loss": 0.2, "accuracy": 0.93}}
    lines = [check_expectations([parse_expectation(t)], results, "val")[0] for t in ("val_accuracy>=0.9",
                                                                                       "val.accuracy>=0.9")]
    assert lines[0] == lines[1] == "ok   val.accuracy = 0.9300 (expected >=0.9)"


# --------------------------------------------------------------------------- names checked before training


def test_names_the_run_will_have_pass_the_early_check():
    check_expectation_names([parse_expectation(t) for t in ("val_accuracy>=0", "test.f1>0.5", "loss<1")],
                            metric_names=["loss", "accuracy", "f1"], splits=["train", "val", "test"])


def test_early_check_names_every_bad_expectation_with_a_suggestion():
    with pytest.raises(ConfigError) as info:
        check_expectation_names([parse_expectation(t) for t in ("val_acuracy>=0.9", "val.loss<1", "test_loss<1")],
                                metric_names=["loss", "accuracy"], splits=["train", "test"])

    lines = str(info.value).splitlines()
    assert info.value.exit_code == 2
    assert len(lines) == 2
    assert lines[0].startswith("--expect val_acuracy>=0.9: this run has no val split")
    assert "data.validation_split is 0" in lines[0] and "it has train, test" in lines[0]
    assert "--expect val.loss<1: this run has no val split" in lines[1]


def test_early_check_suggests_the_closest_metric():
    with pytest.raises(ConfigError) as info:
        check_expectation_names([parse_expectation("acuracy>=0.9")], metric_names=["loss", "accuracy", "f1"],
                                splits=["train", "val"])

    message = str(info.value)
    assert "no metric 'acuracy' in val" in message  # no split given: test, else val
    assert "did you mean 'accuracy'" in message and "available: loss, accuracy, f1" in message


# --------------------------------------------------------------------------- through the CLI, before training


@pytest.mark.tf
@pytest.mark.parametrize(
    "expect, sets, fragment",
    [("val_acuracy>=0.9", [], "no metric 'acuracy' in val (did you mean 'accuracy'?)"),
     ("val_accuracy>=0.9", ["data.validation_split=0"], "this run has no val split (data.validation_split is 0)"),
     ("test.loss<1", ["data.test_split=0"], "this run has no test split")],
)
def test_a_bad_expect_name_exits_2_before_training(tmp_path, expect, sets, fragment):
    pytest.importorskip("tensorflow")
    import time

    from typer.testing import CliRunner

    from fmtrain.cli import app

    overrides = [arg for s in ["train.epochs=500", "train.early_stopping=null", *sets] for arg in ("--set", s)]
    run_dir = tmp_path / "run"
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(run_dir),
                                      "--quiet", "--expect", expect, *overrides])

    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert not run_dir.exists()  # no run directory, so no checkpoint: training never started
    assert time.perf_counter() - started < 60  # 500 epochs would take minutes


@pytest.mark.tf
def test_the_printed_names_pass_after_a_real_fit(tmp_path):
    pytest.importorskip("tensorflow")
    from typer.testing import CliRunner

    from fmtrain.cli import app

    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(ROOT / "configs/digits_mlp.yaml"), "--run-dir", str(run_dir),
                                      "--quiet", "--set", "train.epochs=1", "--expect", "val_accuracy>=0.0",
                                      "--expect", "val.accuracy>=0.0", "--expect", "test_loss<100"])

    assert result.exit_code == 0, result.output
    assert result.output.count("ok   val.accuracy") == 2 and "ok   test.loss" in result.output
