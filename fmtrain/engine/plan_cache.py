"""A persistent cache of measured jit choices, like cuDNN's or Triton's autotuning caches.

When ``jit_compile: auto`` times XLA against the plain graph, the winner and the per-step times
are stored under the cache directory, keyed by what decides them: the model's layer classes and
variable shapes, the batch shape, the loss, metrics and optimizer, the dtype policy, the device
and the TensorFlow/Keras versions. A later run with the same key reuses the choice without a trial.

A run whose trial budget kept XLA untried stores no choice, only the plain graph's timing the
budget was judged on: an identical later run judges the same numbers (the same choice), a
longer one may find the trial affordable, and its measured choice then replaces the timing.

The cache is an optimisation only: an unreadable, corrupt or stale file is ignored (and rewritten
by the next measurement), and a failed write is not an error. Only :func:`model_signature`
imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from fmtrain.cache import cache_dir
from fmtrain.engine.device import device_kind
from fmtrain.engine.planning import GraphTiming, JitDecision, PlanRecord
from fmtrain.errors import RunDirError
from fmtrain.fileio import atomic_write_json

FORMAT_VERSION = 1


def plans_dir() -> Path:
    """Where the plan files live: one JSON file per key."""
    return cache_dir() / "plans"


def model_signature(parts, *, batch_size: int, feed: str) -> dict[str, Any]:
    """What decides whether XLA beats the plain graph for a training step: the cache key.

    Args:
        parts: the step's ``StepParts`` (model, loss, metrics, optimizer).
        batch_size, feed: the batch shape and how batches reach the step ("graph" or "dataset").
    """
    import keras
    import tensorflow as tf

    model = parts.model
    return {
        "layers": [type(layer).__name__ for layer in model._flatten_layers(include_self=False, recursive=True)],
        "variables": [[list(v.shape), str(v.dtype)] for v in model.variables],
        "inputs": [[list(t.shape), str(t.dtype)] for t in tf.nest.flatten(getattr(model, "inputs", []))],
        "batch_size": batch_size,
        "feed": feed,
        "loss": getattr(parts.loss_fn, "__name__", type(parts.loss_fn).__name__),
        "metrics": [type(metric).__name__ for metric in parts.metrics],
        "optimizer": type(parts.optimizer).__name__,
        "dtype_policy": keras.mixed_precision.global_policy().name,
        "device": device_kind(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def plan_key(signature: dict[str, Any]) -> str:
    """A stable file name for ``signature`` (any JSON-serialisable dict)."""
    text = json.dumps(signature, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load(signature: dict[str, Any]) -> JitDecision | None:
    """The stored jit choice for ``signature``, or None (absent, unreadable, corrupt, other key)."""
    path = plans_dir() / f"{plan_key(signature)}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("version") != FORMAT_VERSION or entry.get("signature") != _jsonable(signature):
            return None
        jit, why, ms = entry["jit"], entry["why"], entry["ms_per_step"]
        if not isinstance(jit, bool) or not isinstance(why, str) or not isinstance(ms, dict):
            return None
        per_step = {name == "xla": float(value) / 1e3 for name, value in ms.items() if name in ("xla", "graph")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return JitDecision(jit, "cache", f"cached {path.name}: {why}", per_step)


def load_timing(signature: dict[str, Any]) -> GraphTiming | None:
    """The plain graph's timing an earlier run judged its trial budget on, or None."""
    path = plans_dir() / f"{plan_key(signature)}.json"
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry.get("version") != FORMAT_VERSION or entry.get("signature") != _jsonable(signature):
            return None
        timing = entry["graph_timing"]
        overhead, per_step = float(timing["overhead_s"]), float(timing["ms_per_step"]) / 1e3
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return GraphTiming(overhead, per_step) if overhead >= 0 and per_step > 0 else None


def store(signature: dict[str, Any], plan: PlanRecord, timing: GraphTiming | None = None) -> Path | None:
    """Store a measured plan's jit choice for ``signature`` (and the graph timing its budget was
    judged on); returns the file, or None when it could not be written (the cache is an
    optimisation: the run goes on)."""
    entry = {
        "version": FORMAT_VERSION,
        "jit": plan.jit,
        "why": plan.why,
        "ms_per_step": {"xla" if jit else "graph": seconds * 1e3 for jit, seconds in plan.per_step.items()},
        **_timing_entry(timing),
    }
    return _write(signature, entry)


def store_timing(signature: dict[str, Any], timing: GraphTiming) -> Path | None:
    """Store only the plain graph's timing, no jit choice (a run whose budget kept XLA untried);
    returns the file, or None when it could not be written."""
    return _write(signature, {"version": FORMAT_VERSION, **_timing_entry(timing)})


def _timing_entry(timing: GraphTiming | None) -> dict[str, Any]:
    if timing is None:
        return {}
    return {"graph_timing": {"overhead_s": timing.overhead, "ms_per_step": timing.per_step * 1e3}}


def _write(signature: dict[str, Any], entry: dict[str, Any]) -> Path | None:
    path = plans_dir() / f"{plan_key(signature)}.json"
    entry = {**entry, "signature": _jsonable(signature)}
    try:
        atomic_write_json(path, entry)
    except (RunDirError, OSError):
        return None
    return path


def clear() -> int:
    """Delete every cached plan; returns how many there were."""
    folder = plans_dir()
    count = len(list(folder.glob("*.json"))) if folder.is_dir() else 0
    shutil.rmtree(folder, ignore_errors=True)
    return count


def _jsonable(signature: dict[str, Any]) -> Any:
    return json.loads(json.dumps(signature, sort_keys=True))
