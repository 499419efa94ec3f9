"""The training loop: epochs, compiled calls, validation, callbacks, guards, resume."""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from fmtrain.engine import plan_cache
from fmtrain.engine import steps as compiled
from fmtrain.engine.callbacks import Callback
from fmtrain.engine.checkpoints import Checkpoint, Snapshot, TrainingState
from fmtrain.engine.feeds import (
    BatchStream,
    DatasetFeed,
    DeviceCopies,
    GraphFeed,
    StreamFeed,
    distributed,
    padded,
    replicated,
)
from fmtrain.engine.planning import CallPlan, JitDecision, PlanRecord, has_convolutions
from fmtrain.errors import Interrupted, TrainingFailed, first_line

EVAL_BATCH = 256
FINGERPRINT_CALLS = 10


@dataclass
class FitResult:
    """What one :meth:`Trainer.fit` call did."""

    history: list[dict[str, float]]
    """One row of logs per epoch, earlier phases and resumed epochs included."""
    fit_seconds: float
    samples_seen: int
    """Examples trained on by this call (``steps_trained`` × batch size)."""
    jit_compile: bool
    steps_per_execution: int | str
    stopped_early: bool = False
    best_epoch: int | None = None
    notes: list[str] = field(default_factory=list)
    loss_fingerprint: str | None = None
    started_at_step: int = 0
    """Global step the call started from: 0, a checkpoint's step, or where an earlier phase ended."""
    steps_trained: int = 0
    """Optimizer steps this call ran (a resumed run: only those after the checkpoint)."""
    resumed_from: Path | None = None
    """The checkpoint this call restored before training, if any."""
    plan: PlanRecord | None = None
    """The call size and jit choice, where they came from and why."""


class Trainer:
    """Trains and evaluates one Keras model with compiled multi-step calls.

    Args:
        model: an uncompiled ``keras.Model``.
        optimizer: a Keras optimizer (None for a trainer that only evaluates).
        loss_fn: ``loss_fn(y_true, y_pred)`` returning per-example losses.
        metrics: Keras metric objects, updated inside the graph.
        jit_compile: True, False or "auto": no XLA for convolutions on CPU, else measured on the
            first calls (falls back when XLA fails); see ``planning.py``.
        steps_per_execution: steps per compiled call, or "auto": about 8192 examples per call,
            on a divisor of the epoch; never resized by timing, so identical runs make identical calls.
        deterministic: no timing-based choices (auto jit means XLA).
        strict_compile: a retrace of a compiled function is an error.
    """

    def __init__(self, model, optimizer, loss_fn, metrics: list, *, jit_compile="auto", steps_per_execution="auto",
                 deterministic: bool = False, strict_compile: bool = False):
        import keras

        self.model = model
        self.optimizer = optimizer
        # Built under a tf.distribute strategy's scope (distribute.strategy), each step runs on every replica.
        strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
        self.parts = compiled.StepParts(model, loss_fn, list(metrics), optimizer, keras.metrics.Mean(name="loss"),
                                        strategy)
        self.notes: list[str] = []
        # Device copies of the arrays fit and evaluate were given, reused while the same arrays come back.
        self._device_copies = DeviceCopies()
        self._config_why = "train.deterministic: no timing-based choice" if deterministic else "train.jit_compile"
        if jit_compile is not False and strategy is not None:
            jit_compile = False
            self.notes.append(f"{self.parts.replicas} replicas (tf.distribute): trained and evaluated without XLA")
            self._config_why = "distribute: the steps of several replicas are not compiled with XLA"
        if jit_compile is not False and _takes_strings(model):
            # XLA has no string type: text models run the vectorizer inside the graph.
            jit_compile = False
            self.notes.append("string inputs: trained and evaluated without XLA")
            self._config_why = "string inputs: XLA has no string type"
        self.jit_compile = jit_compile is not False
        self.jit_policy = (jit_compile is not False) if deterministic else jit_compile
        self.steps_per_execution = steps_per_execution
        self.deterministic = deterministic
        self.strict_compile = strict_compile
        self.stop_training = False
        self.stop_reason: str | None = None
        self.global_step = 0
        self.position = (0, 0)
        self.history: list[dict[str, float]] = []
        self._train_fns: dict[tuple[str, bool], Any] = {}
        self._shapes_seen: set[tuple] = set()
        self._measured_jit: JitDecision | None = None
        self._train_fn = None
        self._eval_fn = None
        self._eval_batch = None
        self._stream_eval_fn = None
        self._stream_eval_batch = None
        self._callbacks: list[Callback] = []
        self._call_losses: list[float] = []

    # ----------------------------------------------------------------- training

    def fit(self, x, y, *, epochs: int, batch_size: int, seed: int, shuffle: bool = True, validation=None,
            callbacks: list[Callback] = (), feed: str = "graph", cache: bool = True, prefetch="auto",
            resume: Checkpoint | None = None, every_steps: int | None = None,
            initial_epoch: int = 0, history: list[dict[str, float]] | None = None,
            global_step: int = 0) -> FitResult:
        """Train until ``epochs`` epochs are done; validate on ``validation=(x, y)`` after each.

        ``x`` may be a :class:`~fmtrain.engine.feeds.BatchStream` (streamed data, ``y`` None, its
        labels already shaped); ``validation`` then may be ``(stream, None)`` too.

        Args:
            resume: a checkpoint to continue from exactly (its variables, epoch, step and history).
            every_steps: keep compiled calls within this many steps (checkpoint cadence).
            initial_epoch, history, global_step: where an earlier phase (fine-tuning) left off.

        Returns:
            A :class:`FitResult`, including the step training started from and the steps it ran.

        Raises:
            TrainingFailed: the loss or a variable became NaN or infinite (caught before any
                checkpoint of that state is written).
            Interrupted: :meth:`request_stop` was called (SIGINT/SIGTERM); callbacks saw ``on_interrupt``.
        """
        strategy = self.parts.strategy
        if _is_stream(x):
            data = StreamFeed(x, batch_size, seed, shuffle, strategy)
        elif feed == "dataset":
            data = DatasetFeed(x, y, batch_size, seed, shuffle, cache, prefetch, strategy)
        else:
            data = GraphFeed(x, y, batch_size, seed, shuffle, strategy, copies=self._device_copies)
        if self.optimizer.built is False:
            self.optimizer.build(self.model.trainable_variables)
        self._callbacks = list(callbacks)
        for callback in self._callbacks:
            callback.trainer = self
        start_epoch, start_step = initial_epoch, 0
        self.history = [dict(row) for row in history or []]
        self.global_step = global_step
        if resume is not None:
            self.restore(resume.state, resume.groups)
            start_epoch, start_step = resume.state.epoch, resume.state.step
        started_at_step = self.global_step
        signature = (plan_cache.model_signature(self.parts, batch_size=data.batch_size, feed=data.kind)
                     if self.jit_policy == "auto" else None)
        plan = CallPlan(steps_per_epoch=data.steps, batch_size=batch_size,
                        total_steps=data.steps * (epochs - start_epoch) - start_step,
                        steps_per_execution=self.steps_per_execution,
                        jit_policy=self.jit_policy, max_chunk=every_steps,
                        known=self._known_jit(signature) if signature is not None else None,
                        config_why=self._config_why,
                        timing=plan_cache.load_timing(signature) if signature is not None else None)
        self.stop_training = False
        for cb in self._callbacks:
            cb.on_train_begin({"epochs": epochs, "steps": data.steps, "batch_size": batch_size,
                               "initial_epoch": start_epoch})
        fit_started = time.perf_counter()
        steps_trained = 0
        call_losses = self._call_losses
        for epoch in range(start_epoch, epochs):
            epoch_started = time.perf_counter()
            step = start_step if epoch == start_epoch else 0
            if step == 0:
                self._reset_metrics()
            data.begin_epoch(epoch)
            for cb in self._callbacks:
                cb.on_epoch_begin(epoch, data.steps)
            logs: dict[str, float] = {}
            while step < data.steps:
                n, jit = plan.next_call(step)
                call_started = time.perf_counter()
                logs, finite = self._run_train(data, step, n, jit, plan)
                plan.record(self.jit_compile, n, time.perf_counter() - call_started)
                step += n
                self.global_step += n
                self.position = (epoch, step)
                steps_trained += n
                if len(call_losses) < FINGERPRINT_CALLS:
                    call_losses.append(logs["loss"])
                self._guard_finite(logs, finite, epoch, step)  # before any callback can checkpoint
                for cb in self._callbacks:
                    cb.on_steps_end(epoch, step, logs)
                if self.stop_reason and step < data.steps:
                    # On an epoch's last step the epoch is finished first, so the checkpoint
                    # lands on its end with its history row (a resume then has no empty row).
                    self._interrupt(epoch, step)
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(*validation).items()})
            logs["lr"] = float(np.asarray(self.optimizer.learning_rate))
            logs["seconds"] = time.perf_counter() - epoch_started
            self.history.append(logs)
            self.position = (epoch + 1, 0)
            for cb in self._callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_reason:
                self._interrupt(epoch + 1, 0)
            if self.stop_training:
                break
        fit_seconds = time.perf_counter() - fit_started
        self.jit_compile = plan.jit
        if plan.measured:  # a later fit on this trainer, or a later run, need not measure again
            self._measured_jit = JitDecision(plan.jit, "measured", f"earlier phase of this run: {plan.why}",
                                             plan.per_step)
            plan_cache.store(signature, plan.record_of(), plan.timing)
        elif plan.timing_measured is not None:  # the budget kept XLA untried: no choice, only what it was judged on
            plan_cache.store_timing(signature, plan.timing_measured)
        self._train_fn = self._train_fns.get((data.kind, self.jit_compile))
        for cb in self._callbacks:
            cb.on_train_end(self.history)
        stopper = next((cb for cb in self._callbacks if hasattr(cb, "stopped_early")), None)
        return FitResult(
            history=self.history, fit_seconds=fit_seconds, samples_seen=steps_trained * batch_size,
            jit_compile=self.jit_compile,
            steps_per_execution=plan.chunk,
            stopped_early=bool(stopper and stopper.stopped_early),
            best_epoch=(stopper.best_epoch + 1) if stopper and stopper.best_epoch is not None else None,
            notes=self.notes,
            loss_fingerprint=hashlib.sha256(" ".join(f"{v:.8e}" for v in call_losses).encode()).hexdigest()[:16],
            started_at_step=started_at_step, steps_trained=steps_trained,
            resumed_from=resume.path if resume is not None else None,
            plan=plan.record_of(),
        )

    def release_device_copies(self) -> None:
        """Drop the device copies fit and evaluate kept, once no later call will pass the same arrays:
        a run's final evaluation then holds only the split it scores, not the training set as well."""
        self._device_copies = DeviceCopies()

    def _known_jit(self, signature: dict) -> JitDecision | None:
        """The jit choice under ``jit_compile: auto`` when no trial is needed to know it."""
        if self._measured_jit is not None:
            return self._measured_jit
        cached = plan_cache.load(signature)
        if cached is not None:
            return cached
        if signature["device"].startswith("cpu") and has_convolutions(self.model):
            return JitDecision(False, "rule", "convolutions on CPU: XLA is slower there (measured), no trial")
        return None

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current compiled call (safe from a signal handler)."""
        self.stop_reason = reason

    def _interrupt(self, epoch: int, step: int) -> None:
        for cb in self._callbacks:
            cb.on_interrupt(epoch, step)
        for cb in self._callbacks:
            cb.on_train_end(self.history)
        raise Interrupted(f"{self.stop_reason} at epoch {epoch + 1 if step else epoch}, step {step}")

    def _run_train(self, data, start: int, n: int, jit: bool, plan: CallPlan) -> tuple[dict[str, float], bool]:
        """Run one compiled call of ``n`` steps; returns its logs and whether every variable is finite."""
        key = (data.kind, jit)
        if key not in self._train_fns:
            self._train_fns[key] = self._make_train_fn(data, jit)
        fn = self._train_fns[key]
        traces_before = fn.experimental_get_tracing_count()
        try:
            logs, finite = fn(*data.args(start, n))
        except Exception as exc:
            # Under jit_compile: auto a failing first XLA call is retried without XLA (string
            # inputs, ops without XLA kernels): XLA fails while compiling, before any update.
            if not (jit and self.jit_policy == "auto" and plan.calls.get(True, 0) == 0):
                raise
            why = f"XLA could not compile this model ({first_line(exc, 160)}); trained without jit_compile"
            self.notes.append(why)
            plan.drop(True, why)
            return self._run_train(data, start, n, False, plan)
        shape = (key, n)
        if self.strict_compile and fn.experimental_get_tracing_count() > traces_before and shape in self._shapes_seen:
            raise TrainingFailed(
                f"train.strict_compile: the training step was traced again for a shape it had already compiled "
                f"({n} steps of batch {getattr(data, 'batch_size', '?')}); something passes a new Python value "
                "or shape each call"
            )
        self._shapes_seen.add(shape)
        self.jit_compile = jit
        return {k: float(v) for k, v in logs.items()}, bool(finite)

    def _make_train_fn(self, data, jit: bool):
        if data.kind == "dataset":
            return compiled.make_dataset_train_function(self.parts, jit)
        return compiled.make_graph_train_function(self.parts, data.batch_size, jit)

    def _guard_finite(self, logs: dict[str, float], finite: bool, epoch: int, step: int) -> None:
        # The running loss is computed before each step's update, so a last update that made the
        # weights inf or NaN shows only in the weights: both are checked.
        loss = logs.get("loss", 0.0)
        if math.isfinite(loss) and finite:
            return
        what = f"training loss became {loss}" if not math.isfinite(loss) else "a variable became inf or NaN"
        raise TrainingFailed(
            f"{what} in epoch {epoch + 1} by step {step} (global step {self.global_step}); "
            "the last good checkpoint is kept; try a smaller optimizer.learning_rate, optimizer.clipnorm, "
            "or standardize the inputs"
        )

    def _reset_metrics(self) -> None:
        self.parts.loss_tracker.reset_state()
        for metric in self.parts.metrics:
            metric.reset_state()

    # ----------------------------------------------------------------- state

    def variable_groups(self) -> dict[str, list]:
        """Every variable training changes, by group, in a stable order."""
        metrics = [self.parts.loss_tracker, *self.parts.metrics]
        return {
            "model": list(self.model.variables),
            "optimizer": list(self.optimizer.variables),
            "metrics": [v for metric in metrics for v in metric.variables],
        }

    def snapshot(self, config_hash: str = "") -> Snapshot:
        """The current state and variable values, for a checkpoint."""
        epoch, step = self.position
        state = TrainingState(
            epoch=epoch, step=step, global_step=self.global_step, history=[dict(row) for row in self.history],
            config_hash=config_hash, call_losses=list(self._call_losses),
            callbacks={type(cb).__name__: cb.state_dict() for cb in self._callbacks if hasattr(cb, "state_dict")},
        )
        return Snapshot(state, {group: [np.asarray(v.numpy()) for v in variables]
                                for group, variables in self.variable_groups().items()})

    def restore(self, state: TrainingState, groups: dict[str, list[np.ndarray]]) -> None:
        """Load a snapshot's values into the variables.

        Raises:
            TrainingFailed: the checkpoint does not match this model (another architecture).
        """
        for group, variables in self.variable_groups().items():
            values = groups.get(group, [])
            if len(values) != len(variables):
                raise TrainingFailed(
                    f"checkpoint has {len(values)} {group} variables but the model has {len(variables)}; "
                    "it was written by a different model"
                )
            for variable, value in zip(variables, values, strict=True):
                if tuple(variable.shape) != tuple(value.shape):
                    raise TrainingFailed(f"checkpoint {group} variable {variable.path} has shape {value.shape}, "
                                         f"the model has {tuple(variable.shape)}")
                variable.assign(value)
        self.global_step, self.position = state.global_step, (state.epoch, state.step)
        self.history = [dict(row) for row in state.history]
        self._call_losses = list(state.call_losses)
        for cb in self._callbacks:
            if hasattr(cb, "load_state_dict") and type(cb).__name__ in state.callbacks:
                cb.load_state_dict(state.callbacks[type(cb).__name__])

    # ----------------------------------------------------------------- evaluation

    def evaluate(self, x, y, batch_size: int = EVAL_BATCH) -> dict[str, float]:
        """Loss and metrics over all of (x, y), exactly (padding rows carry zero weight).

        ``x`` may be a :class:`~fmtrain.engine.feeds.BatchStream` (``y`` None): read once, in order."""
        batch_size = -(-batch_size // self.parts.replicas) * self.parts.replicas  # whole slices per replica
        if _is_stream(x):
            return self._evaluate_stream(x, batch_size)
        if self._eval_fn is None or self._eval_batch != batch_size:
            self._eval_fn = compiled.make_eval_function(self.parts, batch_size, self.jit_compile)
            self._eval_batch = batch_size
        for metric in self.parts.metrics:
            metric.reset_state()
        arrays = self._device_copies.get(
            ("eval", batch_size), (x, y),
            lambda: [replicated(part, self.parts.strategy) for part in padded(x, y, batch_size)])
        if self.parts.strategy is None and self._eval_fn.experimental_get_tracing_count() == 0:
            # One trace for every split: a run scores several lengths (validation each epoch, then
            # train, val and test), and reduce_retracing alone traces twice, the first length exactly,
            # then any; each trace of a model costs as much as 0.4 s (text_transformer.yaml).
            self._eval_fn.get_concrete_function(*compiled.any_length(arrays))
        result = self._eval_fn(*arrays)
        return {k: float(v) for k, v in result.items()}

    def _evaluate_stream(self, stream: BatchStream, batch_size: int) -> dict[str, float]:
        if self._stream_eval_fn is None or self._stream_eval_batch != batch_size:
            self._stream_eval_fn = _make_stream_eval_function(self.parts, self.jit_compile)
            self._stream_eval_batch = batch_size
        for metric in self.parts.metrics:
            metric.reset_state()
        with warnings.catch_warnings():  # tf.data's note on reading a distributed dataset's options while tracing
            warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data options")
            result = self._stream_eval_fn(distributed(stream.eval_batches(batch_size), self.parts.strategy))
        return {k: float(v) for k, v in result.items()}

    def predict_stream(self, stream: BatchStream, batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs and labels of every example of a stream, in order."""
        fn = compiled.make_predict_function(self.model, self.jit_compile)
        outputs, labels = [], []
        for x, y, weights in stream.eval_batches(batch_size):
            keep = int(tf.reduce_sum(weights))
            outputs.append(np.asarray(fn(x))[:keep])
            labels.append(np.asarray(y)[:keep])
        return np.concatenate(outputs), np.concatenate(labels)

    def predict(self, x, batch_size: int = EVAL_BATCH) -> np.ndarray:
        """Model outputs for every example of x."""
        fn = compiled.make_predict_function(self.model, self.jit_compile)
        n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
        x_padded, _, _ = padded(x, np.zeros(n, np.float32), batch_size)
        outputs = [np.asarray(fn(compiled.gather_rows(x_padded, tf.range(start, start + batch_size))))
                   for start in range(0, n, batch_size)]
        return np.concatenate(outputs)[:n]

    @property
    def metric_names(self) -> list[str]:
        """What :meth:`evaluate` reports: ``loss``, then each metric's name."""
        return ["loss", *(metric.name for metric in self.parts.metrics)]

    def trace_counts(self) -> dict[str, int]:
        """How often each compiled function was traced (one per distinct call shape)."""
        counts = {}
        for name, fn in (("train", self._train_fn), ("eval", self._eval_fn)):
            if fn is not None and hasattr(fn, "experimental_get_tracing_count"):
                counts[name] = fn.experimental_get_tracing_count()
        return counts


def _is_stream(x) -> bool:
    return hasattr(x, "train_batches") and hasattr(x, "eval_batches")


def _make_stream_eval_function(parts, jit_compile: bool):
    """One pass over a dataset of padded ``(x, y, weights)`` batches: loss and metrics, exactly."""

    def one_batch(x, y, weights):
        return compiled.eval_step(parts, compiled.as_float_inputs(x), y, weights)

    step = tf.function(one_batch, jit_compile=True) if jit_compile else one_batch

    def batch(x, y, weights):
        loss_sum, weight_sum = compiled.on_replicas(parts, step, x, y, weights)
        return compiled.summed(parts, loss_sum), compiled.summed(parts, weight_sum)

    @tf.function
    def evaluate(dataset):
        total = tf.constant(0.0)
        count = tf.constant(0.0)
        for x, y, weights in dataset:
            loss_sum, weight_sum = batch(x, y, weights)
            total += loss_sum
            count += weight_sum
        return {"loss": tf.math.divide_no_nan(total, count), **compiled.metric_results(parts)}

    return evaluate


def _takes_strings(model) -> bool:
    return any("string" in str(t.dtype) for t in tf.nest.flatten(model.inputs))


__all__ = ["Trainer", "FitResult"]
