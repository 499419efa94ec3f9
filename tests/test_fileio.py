"""Atomic writes, and what a full or read-only disk looks like to the user."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fmtrain.errors import RunDirError
from fmtrain.fileio import atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def _fail_writes_to(monkeypatch, name_part: str, error: int, after: int = 0) -> None:
    """Make os.write fail with ``error`` for temporary files whose name contains ``name_part``,
    after ``after`` such files were written successfully."""
    real_write, seen = os.write, set()

    def write(fd, data):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if name_part in Path(target).name:
            seen.add(target)
            if len(seen) > after:
                raise OSError(error, os.strerror(error))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_names_the_file_the_space_and_the_fixes_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old contents")
    _fail_writes_to(monkeypatch, "metrics.json", errno.ENOSPC)
    with pytest.raises(RunDirError) as raised:
        atomic_write_bytes(target, b"x" * 5000)
    message = str(raised.value)
    assert str(target) in message and "no space left" in message and "4.9 KB needed" in message
    assert "train.checkpoint.keep_last" in message and "--run-dir" in message and "\n" not in message
    assert target.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"], "the temporary file was left behind"


def test_a_read_only_folder_says_so(tmp_path, monkeypatch):
    _fail_writes_to(monkeypatch, "config.yaml", errno.EROFS)
    with pytest.raises(RunDirError, match=r"config\.yaml: may not write it .*--run-dir"):
        atomic_write_text(tmp_path / "config.yaml", "name: x\n")


@pytest.mark.tf
def test_fit_on_a_full_disk_exits_2_with_one_line_and_keeps_the_earlier_checkpoints(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    from typer.testing import CliRunner

    from fmtrain.cli import app
    from fmtrain.engine.checkpoints import CheckpointManager

    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {ROOT / 'configs/digits_mlp.yaml'}\n"
                      "train: {epochs: 2, early_stopping: null, checkpoint: {every_steps: 10, keep_last: 10}}\n")
    _fail_writes_to(monkeypatch, ".step-", errno.ENOSPC, after=2)
    result = CliRunner().invoke(app, ["fit", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "no space left" in errors[0] and "train.checkpoint.keep_last" in errors[0]
    manager = CheckpointManager(tmp_path / "run" / "checkpoints")
    kept = [p.name for p in manager.checkpoints()]
    assert len(kept) == 2, "the two checkpoints written before the disk filled up are kept"
    failed = errors[0].split(": no space")[0].rsplit("/", 1)[-1]
    assert failed.startswith("step-") and failed not in kept and failed > kept[-1]
    assert manager.latest()[0].name == kept[-1]
    assert not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))
