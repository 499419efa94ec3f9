"""``fmtrain tune``: the space is checked before anything runs, pruning stops a run, and a continued
study neither repeats a finished trial nor loses an unfinished one."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.config import load_config
from fmtrain.errors import ConfigError
from fmtrain.tune import STUDY_DB, STUDY_NAME, Objective, PruningCallback, TuneOptions, tune
from fmtrain.tune_space import read_space

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "configs" / "digits_mlp.yaml"
SPACE = """\
optimizer.learning_rate: {type: log_uniform, low: 1.0e-3, high: 1.0e-2}
model.hidden_units: {type: categorical, choices: [[8], [16]]}
model.dropout: {type: uniform, low: 0.0, high: 0.2}
"""
TINY = ["--set", "train.epochs=1", "--set", "train.early_stopping=null", "--device", "cpu"]


def _space(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_misspelt_key_exits_2_naming_the_space_file_line_before_anything_is_written(tmp_path):
    space = _space(tmp_path, SPACE + "optimizer.learnin_rate: {type: uniform, low: 0.001, high: 0.01}\n")
    study = tmp_path / "study"
    result = CliRunner().invoke(app, ["tune", str(DIGITS), "--space", str(space), "--trials", "2",
                                      "--study-dir", str(study)])
    assert result.exit_code == 2, result.output
    assert f"{space}:4:1:" in result.stderr and "learnin_rate" in result.stderr
    assert "did you mean 'learning_rate'" in result.stderr
    assert "Traceback" not in result.output
    assert not study.exists()


def test_a_value_out_of_the_schemas_range_is_refused_at_its_line(tmp_path):
    space = _space(tmp_path, "model.dropout: {type: uniform, low: 0.0, high: 1.5}\n")
    result = CliRunner().invoke(app, ["tune", str(DIGITS), "--space", str(space), "--trials", "1",
                                      "--study-dir", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert f"{space}:1:1: model.dropout" in result.stderr and "1.5" in result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("a.b: {type: loguniform, low: 1, high: 2}\n", "space.yaml:1:7: a.b.type: expected one of log_uniform"),
    ("a.b: {type: uniform, low: 2, high: 1}\n", "low (2) is above high (1)"),
    ("a.b: {type: log_uniform, low: 0, high: 1}\n", "log_uniform needs low > 0"),
    ("a.b: {type: int, low: 1.5, high: 3}\n", "a.b.low: expected an integer"),
    ("a.b: {type: categorical, choices: []}\n", "a.b.choices: expected a non-empty list"),
    ("a.b: {type: uniform, low: 0, high: 1, choices: [1]}\n", "a.b.choices: not used by type uniform"),
    ("[1, 2]\n", "a search space maps config keys to ranges"),
])
def test_bad_space_entries_are_one_located_line(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        read_space(_space(tmp_path, text))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_objective_reads_the_epoch_line_name_and_infers_its_direction():
    assert Objective.parse("val_loss", None) == Objective("val_loss", "minimize", "val", "loss")
    assert Objective.parse("val_accuracy", None).direction == "maximize"
    assert Objective.parse("loss", None).split == "train"
    assert Objective.parse("val_accuracy", "minimize").direction == "minimize"
    with pytest.raises(ConfigError, match="leaks"):
        Objective.parse("test_accuracy", None)
    with pytest.raises(ConfigError, match="did you mean 'maximize'"):
        Objective.parse("val_accuracy", "maximise")


def test_the_pruning_callback_reports_each_epoch_and_stops_the_run_when_pruned():
    import optuna

    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.5))
    trial = study.ask()
    callback = PruningCallback(trial, "val_loss")
    callback.trainer = SimpleNamespace(stop_training=False)
    callback.on_epoch_end(0, {"loss": 0.3, "val_loss": 0.4})
    assert callback.trainer.stop_training is False and callback.pruned_at is None
    callback.on_epoch_end(1, {"loss": 0.3, "val_loss": 0.9})
    assert callback.trainer.stop_training is True and callback.pruned_at == 2
    assert study.trials[0].intermediate_values == {0: 0.4, 1: 0.9}
    callback.trainer = SimpleNamespace(stop_training=False)  # a fine-tuning phase after the pruned one
    callback.on_epoch_end(2, {"val_loss": 0.1})
    assert callback.trainer.stop_training is True


def _finished_runs(study: Path) -> list[str]:
    return sorted(p.parent.name for p in study.glob("trial-*/model.keras"))


@pytest.mark.tf
@pytest.mark.slow
def test_three_trials_continue_after_a_kill_without_repeating_one_and_best_yaml_validates(tmp_path):
    import optuna
    from optuna.trial import TrialState

    space, study_dir = _space(tmp_path), tmp_path / "study"
    args = ["tune", str(DIGITS), "--space", str(space), "--study-dir", str(study_dir), *TINY]
    # A misspelt metric is found before the first trial trains (one line, exit 2, no run directory) ...
    typo = CliRunner().invoke(app, [*args, "--trials", "2", "--metric", "val_acuracy"])
    assert typo.exit_code == 2, typo.output
    assert typo.stderr == ("error: --metric val_acuracy: no metric 'acuracy' in val (did you mean 'accuracy'?); "
                           "available: loss, accuracy, f1\n")
    assert not list(study_dir.glob("trial-*"))
    # ... and as nothing finished, the study starts afresh with another objective (maximize → minimize).
    # This time the process is killed (SIGKILL) once its third trial has opened its run directory.
    process = subprocess.Popen([sys.executable, "-m", "fmtrain", *args, "--trials", "3", "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not (study_dir / "trial-0002").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=60)
    assert (study_dir / "trial-0002").exists(), stderr.decode()
    assert _finished_runs(study_dir) == ["trial-0000", "trial-0001"]
    storage = f"sqlite:///{study_dir / STUDY_DB}"
    killed = optuna.load_study(study_name=STUDY_NAME, storage=storage).trials[2]
    assert killed.state == TrialState.RUNNING  # what the killed process left
    killed_params = dict(killed.params)

    # Continued with a pruner that stops every trial after its first epoch: the killed trial's values
    # are retried (and pruned), the finished ones are not run again.
    options = TuneOptions(study_dir=study_dir, trials=3, objective=Objective.parse("val_loss", None),
                          overrides=["train.epochs=3", "train.early_stopping=null"], device="cpu",
                          pruner=optuna.pruners.ThresholdPruner(upper=0.0), report=lambda line: None)
    outcome = tune(DIGITS, read_space(space), options)
    assert outcome.ran == 1
    trials = optuna.load_study(study_name=STUDY_NAME, storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL,
                                         TrialState.PRUNED]
    assert trials[3].params == killed_params and trials[3].user_attrs["retry_of"] == 2
    assert [row.state for row in outcome.trials] == ["complete", "complete", "unfinished", "pruned"]
    assert _finished_runs(study_dir) == ["trial-0000", "trial-0001", "trial-0003"]  # 0 and 1 not run again
    with open(study_dir / "trial-0003" / "history.csv") as handle:  # stopped after 1 of 3 epochs, run whole
        assert len(list(csv.DictReader(handle))) == 1

    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert outcome.best.number == best.number
    best_yaml = study_dir / "best.yaml"
    assert load_config(best_yaml).model.hidden_units == best.user_attrs["values"]["model.hidden_units"]
    assert best_yaml.read_text() == (study_dir / f"trial-{best.number:04d}" / "config.yaml").read_text()


def test_a_diverged_trial_counts_as_finished_and_an_interrupted_one_is_retried(tmp_path, monkeypatch):
    """The search's bookkeeping, with fit replaced by a stub (no TensorFlow): trial 0 diverges, trial 1
    completes, trial 2 is interrupted (exit 130); the next run retries trial 2's values once."""
    import sys
    import types

    from fmtrain.errors import Interrupted, TrainingFailed

    script = iter(["diverge", 0.5, "interrupt", 0.25])
    seen: list[dict] = []

    def fake_fit(cfg, options):
        assert type(cfg.train.epochs) is int and 1 <= cfg.train.epochs <= 3
        seen.append({"lr": cfg.optimizer.learning_rate, "run_dir": options.run_dir.name})
        step = next(script)
        if step == "diverge":
            raise TrainingFailed("loss became NaN at epoch 1")
        if step == "interrupt":
            raise Interrupted("stopped by SIGINT at epoch 1, step 3")
        return SimpleNamespace(metrics=SimpleNamespace(epochs_run=1, final={"val": {"loss": step}}))

    stub = types.ModuleType("fmtrain.fit")
    stub.FitOptions, stub.fit = lambda **kwargs: SimpleNamespace(**kwargs), fake_fit
    monkeypatch.setitem(sys.modules, "fmtrain.fit", stub)
    space = _space(tmp_path, "optimizer.learning_rate: {type: log_uniform, low: 1.0e-3, high: 1.0e-2}\n"
                             "train.epochs: {type: int, low: 1, high: 3}\n")
    args = ["tune", str(DIGITS), "--space", str(space), "--study-dir", str(tmp_path / "s"), "--trials", "3"]

    first = CliRunner().invoke(app, args)
    assert first.exit_code == 130, first.output
    assert [s["run_dir"] for s in seen] == ["trial-0000", "trial-0001", "trial-0002"]
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert seen[3] == {"lr": seen[2]["lr"], "run_dir": "trial-0003"}  # the interrupted values, once more
    assert len(seen) == 4  # 0 (diverged) and 1 (complete) were not run again
    assert "diverged" in second.output and "unfinished" in second.output
    assert load_config(tmp_path / "s" / "best.yaml").optimizer.learning_rate == seen[3]["lr"]  # 0.25 < 0.5


def test_without_optuna_tune_exits_2_with_the_install_command(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # what an install without the extra has
    result = CliRunner().invoke(app, ["tune", str(DIGITS), "--space", str(_space(tmp_path)), "--trials", "1",
                                      "--study-dir", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: fmtrain tune needs Optuna, which is not installed; run: " \
        "pip install 'fmtrain[tune]'"
    assert not (tmp_path / "s").exists()



def test_a_second_process_on_the_same_study_is_refused(tmp_path):
    import fcntl

    study = tmp_path / "s"
    study.mkdir()
    with open(study / ".lock", "w") as held:  # what a running fmtrain tune holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(app, ["tune", str(DIGITS), "--space", str(_space(tmp_path)), "--trials", "1",
                                          "--study-dir", str(study)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {study}: another fmtrain tune is working on this study; wait for it or " \
        "use another --study-dir\n"
    assert not (study / STUDY_DB).exists()
