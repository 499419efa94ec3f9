"""The training loop: epochs, compiled calls, validation, callbacks, and a NaN guard."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from fmtrain.engine import steps as compiled
from fmtrain.engine.callbacks import Callback
from fmtrain.engine.feeds import DatasetFeed, GraphFeed, padded
from fmtrain.errors import TrainingFailed

# Auto-sized calls aim for this many seconds each: long enough that the per-call overhead is
# noise, short enough that the progress bar stays live.
TARGET_CALL_SECONDS = 0.25
EVAL_BATCH = 256


@dataclass
class FitResult:
    history: list[dict[str, float]]
    fit_seconds: float
    samples_seen: int
    jit_compile: bool
    steps_per_execution: int | str
    stopped_early: bool = False
    best_epoch: int | None = None
    notes: list[str] = field(default_factory=list)


class Trainer:
    """Trains and evaluates one Keras model with compiled multi-step calls.

    Args:
        model: an uncompiled ``keras.Model``.
        optimizer: a built or unbuilt Keras optimizer.
        loss_fn: ``loss_fn(y_true, y_pred)`` returning per-example losses.
        metrics: Keras metric objects, updated inside the graph.
        jit_compile: True, False or "auto" (XLA, falling back when a layer cannot compile).
        steps_per_execution: steps per compiled call, or "auto".
    """

    def __init__(self, model, optimizer, loss_fn, metrics: list, *, jit_compile="auto", steps_per_execution="auto"):
        import keras

        self.model = model
        self.optimizer = optimizer
        self.parts = compiled.StepParts(model, loss_fn, list(metrics), optimizer, keras.metrics.Mean(name="loss"))
        self.jit_compile = jit_compile is not False
        self.jit_policy = jit_compile
        self.steps_per_execution = steps_per_execution
        self.stop_training = False
        self.notes: list[str] = []
        self._train_fn = None
        self._train_fn_kind = None
        self._eval_fn = None
        self._eval_batch = None
        self._trained_once = False

    # ----------------------------------------------------------------- training

    def fit(self, x, y, *, epochs: int, batch_size: int, seed: int, shuffle: bool = True, validation=None,
            callbacks: list[Callback] = (), feed: str = "graph", cache: bool = True, prefetch="auto",
            initial_epoch: int = 0) -> FitResult:
        """Train for ``epochs`` epochs; validate on ``validation=(x, y)`` after each."""
        if feed == "dataset":
            data = DatasetFeed(x, y, batch_size, seed, shuffle, cache, prefetch)
        else:
            data = GraphFeed(x, y, batch_size, seed, shuffle)
        if self.optimizer.built is False:
            self.optimizer.build(self.model.trainable_variables)
        for callback in callbacks:
            callback.trainer = self
        chunk = data.steps if self.steps_per_execution == "auto" else int(self.steps_per_execution)
        chunk = min(chunk, data.steps, 16 if self.steps_per_execution == "auto" else chunk)
        history: list[dict[str, float]] = []
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin({"epochs": epochs, "steps": data.steps, "batch_size": batch_size})
        fit_started = time.perf_counter()
        samples = 0
        for epoch in range(initial_epoch, epochs):
            epoch_started = time.perf_counter()
            self._reset_metrics()
            data.begin_epoch(epoch)
            for cb in callbacks:
                cb.on_epoch_begin(epoch, data.steps)
            step = 0
            logs: dict[str, float] = {}
            while step < data.steps:
                n = min(chunk, data.steps - step)
                call_started = time.perf_counter()
                logs = self._run_train(data, step, n)
                elapsed = time.perf_counter() - call_started
                step += n
                samples += n * batch_size
                self._guard_finite(logs, epoch, step)
                if self.steps_per_execution == "auto" and (epoch > initial_epoch or step > n):
                    chunk = max(1, min(data.steps, round(n * TARGET_CALL_SECONDS / max(elapsed, 1e-6))))
                for cb in callbacks:
                    cb.on_steps_end(epoch, step, logs)
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(*validation).items()})
            logs["lr"] = float(np.asarray(self.optimizer.learning_rate))
            logs["seconds"] = time.perf_counter() - epoch_started
            history.append(logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        fit_seconds = time.perf_counter() - fit_started
        for cb in callbacks:
            cb.on_train_end(history)
        stopper = next((cb for cb in callbacks if hasattr(cb, "stopped_early")), None)
        return FitResult(
            history=history, fit_seconds=fit_seconds, samples_seen=samples, jit_compile=self.jit_compile,
            steps_per_execution=chunk if self.steps_per_execution == "auto" else self.steps_per_execution,
            stopped_early=bool(stopper and stopper.stopped_early),
            best_epoch=(stopper.best_epoch + 1) if stopper and stopper.best_epoch is not None else None,
            notes=self.notes,
        )

    def _run_train(self, data, start: int, n: int) -> dict[str, float]:
        if self._train_fn is None or self._train_fn_kind != data.kind:
            self._train_fn = self._make_train_fn(data)
            self._train_fn_kind = data.kind
        first_call = not self._trained_once
        try:
            result = self._train_fn(*data.args(start, n))
        except Exception as exc:
            # With jit_compile: auto, a first call that fails is retried once without XLA (string
            # inputs, ops without XLA kernels); XLA fails while compiling, before any update.
            if not (first_call and self.jit_compile and self.jit_policy == "auto"):
                raise
            self.notes.append(f"XLA could not compile this model ({_first_line(exc)}); trained without jit_compile")
            self.jit_compile = False
            self._train_fn = self._make_train_fn(data)
            self._eval_fn = None
            result = self._train_fn(*data.args(start, n))
        self._trained_once = True
        return {k: float(v) for k, v in result.items()}

    def _make_train_fn(self, data):
        if data.kind == "dataset":
            return compiled.make_dataset_train_function(self.parts, self.jit_compile)
        return compiled.make_graph_train_function(self.parts, data.batch_size, self.jit_compile)

    def _guard_finite(self, logs: dict[str, float], epoch: int, step: int) -> None:
        loss = logs.get("loss", 0.0)
        if not math.isfinite(loss):
            raise TrainingFailed(
                f"training loss became {loss} in epoch {epoch + 1} by step {step}; "
                "try a smaller optimizer.learning_rate, optimizer.clipnorm, or standardize the inputs"
            )

    def _reset_metrics(self) -> None:
        self.parts.loss_tracker.reset_state()
        for metric in self.parts.metrics:
            metric.reset_state()

    # ----------------------------------------------------------------- evaluation

    def evaluate(self, x, y, batch_size: int = EVAL_BATCH) -> dict[str, float]:
        """Loss and metrics over all of (x, y), exactly (padding rows carry zero weight)."""
        if self._eval_fn is None or self._eval_batch != batch_size:
            self._eval_fn = compiled.make_eval_function(self.parts, batch_size, self.jit_compile)
            self._eval_batch = batch_size
        for metric in self.parts.metrics:
            metric.reset_state()
        result = self._eval_fn(*padded(x, y, batch_size))
        return {k: float(v) for k, v in result.items()}

    def predict(self, x, batch_size: int = EVAL_BATCH) -> np.ndarray:
        """Model outputs for every example of x."""
        fn = compiled.make_predict_function(self.model, self.jit_compile)
        n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
        x_padded, _, _ = padded(x, np.zeros(n, np.float32), batch_size)
        outputs = []
        for start in range(0, n, batch_size):
            batch = tf.nest.map_structure(lambda t: t[start:start + batch_size], x_padded)
            outputs.append(np.asarray(fn(batch)))
        return np.concatenate(outputs)[:n]

    def trace_counts(self) -> dict[str, int]:
        """How often each compiled function was traced (1 means no retracing)."""
        counts = {}
        for name, fn in (("train", self._train_fn), ("eval", self._eval_fn)):
            if fn is not None and hasattr(fn, "experimental_get_tracing_count"):
                counts[name] = fn.experimental_get_tracing_count()
        return counts


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__


__all__ = ["Trainer", "FitResult"]
