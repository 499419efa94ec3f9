"""The bad-input corpus: every case exits 2 with one line naming the file, key or line,
prints no traceback, and leaves what was on disk untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fmtrain.cli import app

ROOT = Path(__file__).resolve().parents[1]
GOOD = """name: good
data: {source: digits, validation_split: 0.2}
model: {type: mlp, hidden_units: [8]}
train: {epochs: 1}
"""


def _csv(tmp: Path, text: str) -> Path:
    (tmp / "data.csv").write_text(text)
    return tmp / "data.csv"


def _config(tmp: Path, text: str) -> list[str]:
    (tmp / "c.yaml").write_text(text)
    return ["fit", str(tmp / "c.yaml"), "--run-dir", str(tmp / "run")]


def _good_csv_config(tmp: Path, csv_text: str, extra: str = "") -> list[str]:
    _csv(tmp, csv_text)
    return _config(tmp, f"name: c\ndata: {{source: csv, path: data.csv, label: y{extra}}}\nmodel: {{type: mlp}}\ntrain: {{epochs: 1}}\n")


# Each case: (id, builder(tmp) -> CLI args, fragments the one-line error must contain).
CONFIG_CASES = [
    ("malformed-yaml", lambda t: _config(t, "name: x\ndata: {source: digits\n"), ["c.yaml:", "invalid YAML"]),
    ("tab-indentation", lambda t: _config(t, "name: x\ndata:\n\tsource: digits\n"), ["c.yaml:3:", "tab"]),
    ("duplicate-key", lambda t: _config(t, GOOD + "name: again\n"), ["c.yaml:5:", "duplicate key 'name'"]),
    ("unknown-top-key", lambda t: _config(t, GOOD + "trian: {}\n"), ["c.yaml:5:", "unknown key 'trian'", "train"]),
    ("unknown-nested-key", lambda t: _config(t, GOOD.replace("epochs: 1", "epoch: 1")), ["train.epoch", "did you mean 'epochs'"]),
    ("wrong-type", lambda t: _config(t, GOOD.replace("epochs: 1", "epochs: five")), ["c.yaml:4:", "train.epochs", "'five'"]),
    ("out-of-range", lambda t: _config(t, GOOD.replace("validation_split: 0.2", "batch_size: 0")), ["data.batch_size", "greater than or equal to 1"]),
    ("fractions-leave-nothing", lambda t: _config(t, GOOD.replace("validation_split: 0.2", "validation_split: 0.5, test_split: 0.5")), ["data", "leaves no training data"]),
    ("unknown-source", lambda t: _config(t, GOOD.replace("source: digits", "source: digitz")), ["data.source", "did you mean 'digits'"]),
    ("unknown-model-type", lambda t: _config(t, GOOD.replace("type: mlp", "type: mpl")), ["model.type", "did you mean 'mlp'"]),
    ("missing-model", lambda t: _config(t, GOOD.replace("model: {type: mlp, hidden_units: [8]}\n", "")), ["model", "required"]),
    ("unknown-optimizer", lambda t: _config(t, GOOD + "optimizer: {name: adamm}\n"), ["optimizer.name", "did you mean 'adam'"]),
    ("unknown-loss", lambda t: _config(t, GOOD + "loss: mse2\n"), ["loss", "unknown loss 'mse2'"]),
    ("unknown-metric", lambda t: _config(t, GOOD + "metrics: [accuracyy]\n"), ["metrics.0", "did you mean 'accuracy'"]),
    ("unknown-layer", lambda t: _config(t, GOOD.replace("{type: mlp, hidden_units: [8]}", "{type: sequential, layers: [{Dense2: {units: 3}}]}")), ["model.layers", "did you mean 'Dense'"]),
    ("python-tag", lambda t: _config(t, GOOD + "seed: !!python/object/apply:os.system [echo pwned]\n"), ["c.yaml:5:", "tags"]),
    ("extends-missing", lambda t: _config(t, "extends: base.yaml\n" + GOOD), ["extends", "base.yaml"]),
    ("extends-cycle", lambda t: _config(t, "extends: c.yaml\n" + GOOD), ["cycle"]),
    ("run-name-escapes", lambda t: _config(t, GOOD.replace("name: good", "name: ../../etc")), ["name", "should match pattern"]),
    ("empty-config", lambda t: _config(t, ""), ["c.yaml", "empty"]),
    ("config-not-a-mapping", lambda t: _config(t, "- a\n- b\n"), ["top level must be a mapping"]),
    ("config-file-missing", lambda t: ["fit", str(t / "nope.yaml")], ["nope.yaml", "not found"]),
    ("set-without-equals", lambda t: _config(t, GOOD) + ["--set", "train.epochs"], ["--set train.epochs", "KEY=VALUE"]),
    ("set-unknown-key", lambda t: _config(t, GOOD) + ["--set", "train.epoch=3"], ["--set train.epoch=3", "did you mean 'epochs'"]),
    ("expect-bad-syntax", lambda t: _config(t, GOOD) + ["--expect", "accuracy is high"], ["--expect", "METRIC OP NUMBER"]),
    ("early-stopping-without-validation",
     lambda t: _config(t, GOOD.replace("validation_split: 0.2", "batch_size: 8").replace("train: {epochs: 1}", "train: {epochs: 1, early_stopping: {}}")),
     ["val_loss", "validation_split"]),
]

DATA_CASES = [
    ("csv-missing-file", lambda t: _config(t, "name: c\ndata: {source: csv, path: missing.csv}\nmodel: {type: mlp}\n"), ["missing.csv"]),
    ("csv-missing-label", lambda t: _good_csv_config(t, "a,b,z\n1,2,0\n3,4,1\n"), ["data.label", "'y'"]),
    ("csv-non-numeric-feature", lambda t: _good_csv_config(t, "a,b,y\n" + "1,2,0\n" * 10 + "x1,2,1\n" + "3,4,1\n" * 10, ", categorical: []"), ["data.csv:12", "'a'"]),
    ("npz-missing-array", lambda t: (np.savez(t / "d.npz", x=np.zeros((10, 2))), _config(t, "name: n\ndata: {source: npz, path: d.npz}\nmodel: {type: mlp}\n"))[1], ["d.npz", "'y'"]),
    ("mnist-offline-without-path", lambda t: _config(t, GOOD.replace("source: digits", "source: mnist")), ["data.path"]),
    ("no-training-rows", lambda t: _good_csv_config(t, "a,y\n1,0\n2,1\n", ", test_split: 0.5, validation_split: 0.4"), ["train"]),
    ("labels-out-of-range", lambda t: _config(t, GOOD.replace("{type: mlp, hidden_units: [8]}", "{type: sequential, layers: [{Flatten: {}}, {Dense: {units: 3, activation: softmax}}]}")), ["10 classes", "3 units"]),
    ("shape-mismatch", lambda t: _config(t, GOOD.replace("{type: mlp, hidden_units: [8]}", "{type: sequential, layers: [{Reshape: {target_shape: [5, 5]}}, {Dense: {units: 10}}]}")), ["model.layers.0.Reshape"]),
    ("loss-does-not-fit-labels", lambda t: _config(t, GOOD + "preprocess: [{one_hot: {}}]\nloss: sparse_categorical_crossentropy\n"), ["loss", "one-hot"]),
    ("run-dir-is-a-file", lambda t: (t.joinpath("file").write_text("keep me"), _config(t, GOOD)[:2] + ["--run-dir", str(t / "file")])[1], ["--run-dir", "not a directory"]),
    ("run-dir-not-empty", lambda t: (t.joinpath("run").mkdir(), t.joinpath("run", "notes.txt").write_text("keep me"), _config(t, GOOD))[2], ["not empty", "--overwrite"]),
    ("overwrite-a-non-run", lambda t: (t.joinpath("run").mkdir(), t.joinpath("run", "notes.txt").write_text("keep me"), _config(t, GOOD) + ["--overwrite"])[2], ["not an fmtrain run"]),
]


def _fake_run(tmp: Path, **changes) -> Path:
    """A run directory whose files are present but may be damaged."""
    run = tmp / "run"
    run.mkdir()
    (run / "config.yaml").write_text(GOOD)
    (run / "data_info.json").write_text(json.dumps({"schema_version": changes.get("version", 1)}))
    (run / "model.keras").write_bytes(changes.get("model", b"PK\x03\x04 truncated"))
    return run


RUN_CASES = [
    ("eval-missing-run", lambda t: ["eval", str(t / "nothing")], ["run directory not found"]),
    ("eval-unfinished-run", lambda t: (t.joinpath("run").mkdir(), ["eval", str(t / "run")])[1], ["not a finished fmtrain run"]),
    ("eval-newer-schema", lambda t: ["eval", str(_fake_run(t, version=99))], ["schema_version 99", "upgrade"]),
    ("eval-bad-split", lambda t: ["eval", str(t), "--split", "tset"], ["--split tset"]),
    ("resume-without-checkpoint", lambda t: (_fake_run(t), ["fit", "--resume", str(t / "run")])[1], ["no checkpoint"]),
    ("bad-device", lambda t: _config(t, GOOD) + ["--device", "tpu"], ["--device tpu"]),
]


# Data and run cases build models or load them: they import TensorFlow.
ALL_CASES = [pytest.param(*case, id=case[0]) for case in CONFIG_CASES] + [
    pytest.param(*case, id=case[0], marks=pytest.mark.tf) for case in DATA_CASES + RUN_CASES
]


@pytest.mark.parametrize("case_id, build, fragments", ALL_CASES)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, monkeypatch, case_id, build, fragments):
    monkeypatch.chdir(tmp_path)
    from fmtrain.data import sources

    def offline(name):
        raise OSError("network is unreachable")

    monkeypatch.setattr(sources, "_download_keras_dataset", offline)
    args = build(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, args)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in {output!r}"
    after = {p: p.read_bytes() for p in before if p.exists()}
    assert after == before, "a file that existed before was changed or removed"
    left_behind = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and p not in before)
    assert not left_behind, f"a refused command left files behind: {left_behind}"


# Options only `fit` has; a case using one has no `validate` counterpart.
FIT_ONLY = ("--expect", "--run-dir", "--overwrite", "--device", "--resume")


def _validate_args(fit_args: list[str]) -> list[str] | None:
    """The `validate` command for a `fit` case: the same config and --set values, or None."""
    if fit_args[0] != "fit":
        return None
    args, rest = ["validate"], iter(fit_args[1:])
    for arg in rest:
        if arg == "--set":
            args += [arg, next(rest)]
        elif arg.startswith("--"):
            if arg in FIT_ONLY and arg not in ("--run-dir",):
                return None
            if arg == "--run-dir":
                next(rest)
        else:
            args.append(arg)
    return args


@pytest.mark.parametrize("case_id, build, fragments", [pytest.param(*case, id=case[0]) for case in CONFIG_CASES])
def test_validate_refuses_every_config_that_fit_refuses(tmp_path, monkeypatch, case_id, build, fragments):
    """`fmtrain validate` and `fmtrain fit` agree on the config cases: the same exit code, the same line."""
    monkeypatch.chdir(tmp_path)
    fit_args = build(tmp_path)
    validate_args = _validate_args(fit_args)
    if validate_args is None:
        pytest.skip("the case uses an option only fit has")
    fitted = CliRunner().invoke(app, fit_args)
    validated = CliRunner().invoke(app, validate_args)
    assert validated.exit_code == fitted.exit_code == 2, validated.output
    assert _error_line(validated.output) == _error_line(fitted.output)


def _error_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("error:"))


# One case per category, as a user's shell runs it: a real process, its real stderr.
SUBPROCESS_CASES = [
    ("config", lambda t: _config(t, GOOD.replace("epochs: 1", "epochs: five")), ["c.yaml:4:", "train.epochs"]),
    ("override", lambda t: _config(t, GOOD) + ["--set", "train.epoch=3"], ["--set train.epoch=3", "epochs"]),
    ("data", lambda t: _good_csv_config(t, "a,b,z\n1,2,0\n3,4,1\n"), ["data.label", "'y'"]),
    ("run-directory", lambda t: (t.joinpath("run").mkdir(), t.joinpath("run", "notes.txt").write_text("keep me"),
                                 _config(t, GOOD))[2], ["not empty", "--overwrite"]),
    ("eval", lambda t: ["eval", str(t / "nothing")], ["run directory not found"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("category, build, fragments", SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_a_real_process_prints_one_line_and_no_traceback(tmp_path, category, build, fragments):
    """CliRunner never prints a traceback, so this is the test that can see one."""
    import subprocess
    import sys

    args = build(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = subprocess.run([sys.executable, "-m", "fmtrain", *args], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, "the refused command changed, removed or added files"


def test_the_corpus_is_large_enough():
    assert len(CONFIG_CASES + DATA_CASES + RUN_CASES) >= 30
