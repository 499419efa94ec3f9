"""A few deliberate subprocess runs: the installed console script, as a user or CI calls it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tf]

ROOT = Path(__file__).resolve().parents[1]
FMTRAIN = [sys.executable, "-m", "fmtrain"]


def run(*args, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    return subprocess.run([*FMTRAIN, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_smoke_from_the_command_line_is_quiet_and_clean(tmp_path):
    result = run("fit", "configs/digits_mlp.yaml", "--smoke", "--run-dir", tmp_path / "run",
                 "--expect", "test.accuracy>=0.3")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # TensorFlow's C++ start-up chatter is silenced by default.
    assert "cpu_feature_guard" not in result.stderr and "absl::InitializeLog" not in result.stderr
    assert "epoch 1/2" in result.stderr  # one plain progress line per epoch when not a terminal
    assert json.loads((tmp_path / "run" / "eval-test.json").read_text())["n_samples"] == 128


def test_bad_config_is_one_line_and_exit_2_without_importing_tensorflow(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("name: bad\ndata: {source: digits}\nmodel: {type: mlp}\ntrain: {epochs: -1}\n")
    result = run("fit", config, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"{config}:4:" in result.stderr and "train.epochs" in result.stderr
    assert not (tmp_path / "run").exists()
