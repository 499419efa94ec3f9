"""Resumable checkpoints: every variable that training changes, plus where training stood.

A checkpoint is one ``.npz`` file in ``<run>/checkpoints/``: the values of the model's
variables (weights, normalization statistics, dropout seed state), the optimizer's (slots,
iteration count — so learning-rate schedules continue), and the running metrics', plus a
JSON record of the epoch, the step inside it, the history so far and the config hash. Data
order depends only on (seed, epoch), so that is all a resumed run needs to continue exactly.

Files are written to a temporary name and renamed, so a crash mid-write never leaves an
unreadable checkpoint under a real name; a damaged file is skipped in favour of an older one.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fmtrain.errors import RunDirError
from fmtrain.fileio import atomic_write_bytes

# 2: TrainingState's ``extra`` dict became the typed ``callbacks`` and ``call_losses`` fields.
FORMAT_VERSION = 2
_NAME = re.compile(r"^step-(\d+)\.npz$")


@dataclass
class TrainingState:
    """Where training stands, apart from the variable values."""

    epoch: int
    """Index of the epoch in progress (or the next one, when ``step`` is 0)."""
    step: int
    """Steps already done in that epoch."""
    global_step: int
    """Optimizer steps taken since the run began (all epochs, all phases)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One row of logs per finished epoch."""
    config_hash: str = ""
    """Hash of the resolved config the run was trained with (``fmtrain.resume.config_hash``)."""
    callbacks: dict[str, dict] = field(default_factory=dict)
    """``state_dict()`` of each callback that has one, by class name (early stopping's best value and patience)."""
    call_losses: list[float] = field(default_factory=list)
    """Mean loss after each of the run's first compiled calls, the input of ``FitResult.loss_fingerprint``."""


class Snapshot(NamedTuple):
    """Training state and variable values, as the trainer hands them to a checkpoint."""

    state: TrainingState
    groups: dict[str, list[np.ndarray]]
    """Variable values by group ("model", "optimizer", "metrics"), in ``Trainer.variable_groups`` order."""


class Checkpoint(NamedTuple):
    """A snapshot read back from disk, and the file it came from."""

    path: Path
    state: TrainingState
    groups: dict[str, list[np.ndarray]]


def save_checkpoint(path: Path, state: TrainingState, groups: dict[str, list[np.ndarray]]) -> None:
    """Write ``groups`` of arrays and ``state`` to ``path`` atomically."""
    arrays = {f"{group}/{i}": np.asarray(value) for group, values in groups.items() for i, value in enumerate(values)}
    meta = {"format": FORMAT_VERSION, "state": asdict(state), "groups": {g: len(v) for g, v in groups.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> Snapshot:
    """Read a checkpoint written by :func:`save_checkpoint` (this format or an older one).

    Raises:
        RunDirError: the file is missing, truncated, or not a checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["__meta__"]).decode("utf-8"))
            groups = {g: [data[f"{g}/{i}"] for i in range(n)] for g, n in meta["groups"].items()}
        if meta.get("format", 0) > FORMAT_VERSION:
            raise RunDirError(f"{path}: written by a newer fmtrain (format {meta['format']}); upgrade to resume it")
        state = TrainingState(**_upgrade_state(meta["state"]))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})") from None
    return Snapshot(state, groups)


def _upgrade_state(state: dict) -> dict:
    """Format 1 kept callback states and call losses in one ``extra`` dict."""
    state = dict(state)
    extra = state.pop("extra", None) or {}
    state.setdefault("callbacks", extra.get("callbacks", {}))
    state.setdefault("call_losses", extra.get("call_losses", []))
    return state


class CheckpointManager:
    """Saves into one folder, keeps the last ``keep_last`` and (optionally) the best."""

    def __init__(self, directory: Path, keep_last: int = 2, keep_best: bool = True):
        self.directory = Path(directory)
        self.keep_last, self.keep_best = keep_last, keep_best
        self.best_value: float | None = None
        self.best_path: Path | None = None
        best = self.directory / "best.json"
        if best.exists():  # a resumed run keeps competing with the best so far
            try:
                record = json.loads(best.read_text())
                self.best_value, self.best_path = float(record["score"]), self.directory / record["path"]
            except (OSError, ValueError, KeyError, TypeError):
                pass

    def save(self, snapshot: Snapshot, score: float | None = None) -> Path:
        """Save a checkpoint; ``score`` (lower is better) decides whether it is the best so far."""
        path = self.directory / f"step-{snapshot.state.global_step:09d}.npz"
        save_checkpoint(path, snapshot.state, snapshot.groups)
        if score is not None and (self.best_value is None or score < self.best_value):
            self.best_value, self.best_path = score, path
            atomic_write_bytes(self.directory / "best.json", json.dumps({"path": path.name, "score": score}).encode())
        self._prune()
        return path

    def _prune(self) -> None:
        keep = set(self.checkpoints()[-self.keep_last:])
        if self.keep_best and self.best_path is not None:
            keep.add(self.best_path)
        for path in self.checkpoints():
            if path not in keep:
                path.unlink(missing_ok=True)

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def latest(self) -> Checkpoint | None:
        """The newest readable checkpoint (damaged ones are skipped), or None."""
        problems = []
        for path in reversed(self.checkpoints()):
            try:
                return Checkpoint(path, *load_checkpoint(path))
            except RunDirError as exc:
                problems.append(str(exc))
        if problems:
            raise RunDirError("no readable checkpoint: " + "; ".join(problems))
        return None
