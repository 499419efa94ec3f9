"""The run directory: where it goes, what it holds, and refusing to clobber anything."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fmtrain.config.yaml_marks import dump_yaml
from fmtrain.errors import RunDirError
from fmtrain.fileio import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
# What `fmtrain eval` needs; a run without them did not finish training.
FINISHED_FILES = ("config.yaml", "model.keras", "data_info.json")


class _Section(BaseModel):
    # Read back leniently: a newer fmtrain may add keys, an older one lacks some.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Timing(_Section):
    fit_seconds: float | None = None
    """Wall time of the training loop, all phases, validation included."""
    first_epoch_seconds: float | None = None
    """The first epoch alone: tracing and compiling land here."""
    total_seconds: float | None = None
    """The whole `fmtrain fit`, data loading and reports included."""


class Throughput(_Section):
    train_samples_per_second: float | None = None


class DistributeInfo(_Section):
    """How training was spread over devices (``distribute`` in the config, ``engine/device.py``)."""

    strategy: str
    """``one_device``, ``mirrored`` or ``multi_worker``."""
    replicas: int
    workers: int
    per_replica_batch: int
    """data.batch_size (the global batch) / replicas."""
    input_sharding: str | None = None
    """How the replicas' input is split: ``data`` (each takes its slice of every global batch); None on one device."""


class PlanInfo(_Section):
    """How the compiled calls were planned (``engine/planning.py``)."""

    jit: bool
    why: str
    """Why this jit choice, e.g. the rule that applied or the timed ms/step of each candidate."""
    steps_per_execution: int
    source: Literal["config", "rule", "cache", "measured"]
    """config: train.jit_compile; rule: known without a trial; cache: an earlier run's measurement;
    measured: timed in this run."""
    ms_per_step: dict[str, float] = Field(default_factory=dict)
    """Timed milliseconds per step of each candidate ("xla", "graph"), when measured or cached."""


class CompileInfo(_Section):
    jit_compile: bool | None = None
    steps_per_execution: int | str | None = None
    traces: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    plan: PlanInfo | None = None


class ResumeInfo(_Section):
    checkpoint: str
    """The checkpoint file this process started from."""
    from_step: int
    steps_trained: int
    """Steps this process trained: the rest of the run, not all of it."""


class Interruption(_Section):
    # Runs interrupted before fmtrain recorded where wrote just `interrupted: true`.
    epoch: int | None = None
    """1-based: the epoch in progress (or the last one finished, when step is 0)."""
    step: int | None = None
    global_step: int | None = None


class PreciseBNInfo(_Section):
    """Batch-norm statistics recomputed after training (``engine/precise_bn.py``)."""

    layers: int
    """BatchNormalization layers whose moving mean and variance were recomputed."""
    batches: int
    batch_size: int
    samples: int
    """Training rows fed (batches × batch size)."""
    seconds: float | None = None


class RunMetrics(_Section):
    """``metrics.json``: what `fmtrain fit` writes and the reports and console read."""

    name: str = "run"
    task: str | None = None
    task_reason: str | None = None
    """Why the task is what it is (``DataInfo.task_reason``); None in runs made before it was recorded."""
    final: dict[str, dict[str, float] | None] = Field(default_factory=dict)
    """Loss and metrics per split (train, val, test) after training, in inference mode."""
    epochs_run: int | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    global_step: int | None = None
    resumed_from_step: int | None = None
    resume: ResumeInfo | None = None
    timing: Timing = Field(default_factory=Timing)
    throughput: Throughput = Field(default_factory=Throughput)
    compile: CompileInfo = Field(default_factory=CompileInfo)
    deterministic: bool = False
    precision: str | None = None
    loss_fingerprint: str | None = None
    data: dict[str, int] = Field(default_factory=dict)
    """Examples per split."""
    params: dict[str, int] = Field(default_factory=dict)
    keras_version: str | None = None
    transfer: dict[str, Any] | None = None
    precise_bn: PreciseBNInfo | None = None
    """Set when batch-norm statistics were recomputed over training batches before the final evaluation."""
    warnings: list[str] = Field(default_factory=list)
    """Results the user must not miss, e.g. the training split scoring far worse in inference mode."""
    interrupted: Interruption | None = None
    """Set while the run is unfinished: where it stopped."""
    distribute: DistributeInfo | None = None
    """Strategy, replicas and per-replica batch; None in runs made before it was recorded."""

    @field_validator("interrupted", mode="before")
    @classmethod
    def _old_flag(cls, value: Any) -> Any:
        return {} if value is True else None if value is False else value

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; sections that do not apply are left out rather than written empty."""
        out = self.model_dump(mode="json")
        for key in ("transfer", "precise_bn", "interrupted", "distribute"):
            if out[key] is None:
                del out[key]
        return out


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.json")
    history = property(lambda self: self.path / "history.csv")
    model = property(lambda self: self.path / "model.keras")
    environment = property(lambda self: self.path / "environment.json")
    data_info = property(lambda self: self.path / "data_info.json")
    report = property(lambda self: self.path / "report.md")

    def eval_result(self, split: str) -> Path:
        return self.path / f"eval-{split}.json"

    def __str__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ writing

    def write_config(self, config_dict: dict[str, Any]) -> None:
        # Written by the rules it is read back with (a name like '1e3' stays a string).
        atomic_write_text(self.config, dump_yaml(config_dict))

    def write_json(self, path: Path, payload: dict[str, Any]) -> None:
        atomic_write_json(path, {"schema_version": SCHEMA_VERSION, **payload})

    def write_history(self, history: list[dict[str, float]]) -> None:
        columns: list[str] = ["epoch"]
        for row in history:
            columns += [k for k in row if k not in columns]
        lines = [",".join(columns)]
        for epoch, row in enumerate(history, start=1):
            values = {"epoch": epoch, **row}
            lines.append(",".join(_csv_number(values.get(c, "")) for c in columns))
        atomic_write_text(self.history, "\n".join(lines) + "\n")

    # ------------------------------------------------------------------ reading

    def read_metrics(self) -> RunMetrics:
        """``metrics.json`` as :class:`RunMetrics`.

        Raises:
            RunDirError: missing, unreadable, from a newer fmtrain, or not metrics.
        """
        from pydantic import ValidationError

        payload = self.read_json(self.metrics)
        try:
            return RunMetrics.model_validate(payload)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise RunDirError(f"{self.metrics}: {where}: {problem['msg']}; the run directory may be damaged") from None

    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"{path}: missing; is {self.path} a finished fmtrain run?") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{path}: unreadable ({exc}); the run directory may be damaged") from None
        version = payload.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RunDirError(
                f"{path}: schema_version {version!r} is newer than this fmtrain understands ({SCHEMA_VERSION}); "
                "upgrade fmtrain to read this run"
            )
        return payload

    @property
    def finished(self) -> bool:
        """Whether training completed: the files ``fmtrain eval`` needs are all there."""
        return all((self.path / name).exists() for name in FINISHED_FILES)

    def require_finished(self) -> None:
        """Raise RunDirError unless this looks like a completed run."""
        if not self.path.is_dir():
            raise RunDirError(f"{self.path}: run directory not found")
        missing = [name for name in FINISHED_FILES if not (self.path / name).exists()]
        if not missing:
            return
        if any((self.path / "checkpoints").glob("step-*.npz")):
            raise RunDirError(
                f"{self.path}: the run was interrupted before it finished (no {missing[0]}); "
                f"continue it with: fmtrain fit --resume {self.path}"
            )
        raise RunDirError(f"{self.path}: not a finished fmtrain run (missing {', '.join(missing)})")


def find_run(path: str | Path) -> tuple[RunDir, str | None]:
    """The run at ``path``, or — when ``path`` is a folder of runs such as ``runs/<name>`` — the
    newest finished run inside it, with a note saying which was chosen.

    Raises:
        RunDirError: ``path`` is neither a finished run nor holds one.
    """
    run = RunDir(path)
    if run.finished or not run.path.is_dir() or (run.path / "config.yaml").exists():
        run.require_finished()
        return run, None
    inside = sorted((RunDir(child) for child in run.path.iterdir() if child.is_dir()), key=lambda r: r.path.name)
    finished = [candidate for candidate in inside if candidate.finished]
    if finished:
        newest = finished[-1]
        return newest, f"{run.path} holds {len(finished)} finished runs; using the newest, {newest.path}"
    runs = [candidate for candidate in inside if (candidate.path / "config.yaml").exists()]
    if runs:
        runs[-1].require_finished()  # says whether to --resume it
    run.require_finished()
    return run, None


def _csv_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def default_run_path(runs_root: Path, name: str, now: datetime | None = None) -> Path:
    """``runs_root/name/YYYYmmdd-HHMMSS`` in UTC, with a suffix if that already exists."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    base = Path(runs_root) / name / stamp
    candidate, suffix = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{stamp}-{suffix}")
        suffix += 1
    return candidate


def check_run_path(path: Path, overwrite: bool) -> None:
    """Refuse a run directory that would clobber something, before any work starts.

    Raises:
        RunDirError: ``path`` is a file, a non-empty directory (without ``overwrite``), a non-empty
            directory that is not an fmtrain run (even with ``overwrite``), or not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--run-dir {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise RunDirError(f"--run-dir {path}: directory is not empty; pass --overwrite or choose another --run-dir")
        if not (path / "config.yaml").exists():
            raise RunDirError(f"--run-dir {path}: not empty and not an fmtrain run; refusing to overwrite it")
    parent = next((p for p in [path, *path.parents] if p.exists()), None)
    if parent is not None and not os.access(parent, os.W_OK):
        raise RunDirError(f"--run-dir {path}: {parent} is not writable")


def create_run_dir(path: Path, overwrite: bool) -> RunDir:
    """Create (or, with ``overwrite``, empty) the run directory. Call :func:`check_run_path` first."""
    path = Path(path)
    if overwrite and path.is_dir():
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot create the run directory: {exc.strerror or exc}") from None
    return RunDir(path)
