"""Pure tensor code for one training or evaluation step, and the compiled loops around them.

Nothing here prints, writes files or touches numpy: the Python loop in ``trainer.py`` and
the callbacks own all of that. Each ``make_*_function`` builds its ``tf.function`` once.
The graph-feed loop takes its length from the shape of the order slice it is given, so each
distinct call size is one trace (and one XLA compilation); ``planning.py`` keeps calls on a
grid of one size, plus the remainder at an epoch's end when the size does not divide it. The
tf.data loop takes its step count as a tensor and is traced once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf


@dataclass
class StepParts:
    """What a step needs: the model, how to score it, and how to improve it."""

    model: Any
    loss_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # per-example losses
    metrics: list[Any]
    optimizer: Any = None
    loss_tracker: Any = None  # keras.metrics.Mean of the training loss
    strategy: Any = None
    """A tf.distribute strategy: each step runs on every replica, on its slice of the batch (None: one device)."""

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1


def as_float_inputs(x):
    """Cast numeric feature inputs (uint8 images, float64 tables) to float32 inside the graph.

    Integer ids (token, user, item ids) and strings pass through unchanged.
    """

    def cast(t):
        if t.dtype == tf.uint8 or (t.dtype.is_floating and t.dtype != tf.float32):
            return tf.cast(t, tf.float32)
        return t

    return tf.nest.map_structure(cast, x)


def gather_rows(x, index):
    """Rows ``index`` of ``x``, an array or a dict of arrays."""
    return tf.nest.map_structure(lambda t: tf.gather(t, index), x)


def all_finite(variables) -> tf.Tensor:
    """A scalar bool: no floating-point variable holds an inf or a NaN."""
    checks = [tf.reduce_all(tf.math.is_finite(v.value)) for v in variables if tf.as_dtype(v.dtype).is_floating]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


def watched_variables(parts: StepParts) -> list:
    """What the NaN guard checks after each call: the model's and the optimizer's variables."""
    return [*parts.model.variables, *parts.optimizer.variables]


def train_step(parts: StepParts, x, y) -> None:
    """Forward pass, loss, gradients, optimizer update, metric update.

    Under a strategy this runs on each replica with its slice of the global batch: the optimizer
    sums the replicas' gradients, so each replica's loss is divided by the number of replicas (the
    mean over the global batch, as ``tf.nn.compute_average_loss`` with the global batch size, since
    every slice has the same size); the loss tracker and metrics take the replica's own values and
    sum them across replicas when read.
    """
    with tf.GradientTape() as tape:
        predictions = parts.model(x, training=True)
        loss = tf.reduce_mean(tf.cast(parts.loss_fn(y, predictions), tf.float32))
        if parts.model.losses:
            loss += tf.cast(tf.add_n(parts.model.losses), tf.float32)
        objective = loss if parts.strategy is None else loss / parts.replicas
        # Identity unless the optimizer is a LossScaleOptimizer (float16 training).
        scaled_loss = parts.optimizer.scale_loss(objective)
    variables = parts.model.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    parts.optimizer.apply_gradients(zip(gradients, variables, strict=True))
    parts.loss_tracker.update_state(loss)
    for metric in parts.metrics:
        metric.update_state(y, predictions)


def eval_step(parts: StepParts, x, y, weights) -> tuple[tf.Tensor, tf.Tensor]:
    """Forward pass and metric update; returns (sum of weighted losses, sum of weights)."""
    predictions = parts.model(x, training=False)
    losses = tf.reshape(tf.cast(parts.loss_fn(y, predictions), tf.float32), [-1])
    for metric in parts.metrics:
        metric.update_state(y, predictions, sample_weight=weights)
    return tf.reduce_sum(losses * weights), tf.reduce_sum(weights)


def replica_rows(start, batch_size: int, replicas: int):
    """The positions of this replica's slice of the batch of ``batch_size`` rows at ``start``
    (inside ``strategy.run``; all of them on one device)."""
    if replicas == 1:
        return start + tf.range(batch_size)
    per_replica = batch_size // replicas
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    return start + replica * per_replica + tf.range(per_replica)


def on_replicas(parts: StepParts, fn, *args):
    """``fn(*args)`` on every replica (``strategy.run``), or once without a strategy."""
    return fn(*args) if parts.strategy is None else parts.strategy.run(fn, args=args)


def summed(parts: StepParts, value):
    """A per-replica scalar summed over the replicas (``strategy.reduce`` with ``axis=None``)."""
    return value if parts.strategy is None else parts.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)


def metric_results(parts: StepParts) -> dict[str, tf.Tensor]:
    return {metric.name: metric.result() for metric in parts.metrics}


def make_graph_train_function(parts: StepParts, batch_size: int, jit_compile: bool):
    """Compile a run of training steps over device-resident arrays into one call.

    The returned function takes ``(x, y, order)``: it trains one step per ``batch_size``
    indices of ``order``, gathering each batch on the device. With ``jit_compile`` XLA
    compiles the whole loop; each distinct length of ``order`` is one trace. It returns
    ``(logs, finite)``: the running loss and metrics, and whether every variable is still
    finite after the call's last update.
    """
    watched = watched_variables(parts)
    replicas = parts.replicas

    def one_step(x, y, order, start):
        # Each replica gathers its own slice of the batch on its device.
        index = tf.gather(order, replica_rows(start, batch_size, replicas))
        train_step(parts, as_float_inputs(gather_rows(x, index)), tf.gather(y, index))

    @tf.function(jit_compile=jit_compile)
    def train_steps(x, y, order):
        steps = tf.shape(order)[0] // batch_size
        i = tf.constant(0)
        while i < steps:
            on_replicas(parts, one_step, x, y, order, i * batch_size)
            i += 1
        return {"loss": parts.loss_tracker.result(), **metric_results(parts)}, all_finite(watched)

    return train_steps


def make_dataset_train_function(parts: StepParts, jit_compile: bool):
    """Compile ``n`` training steps that pull batches from a tf.data iterator into one call.

    The returned function takes ``(iterator, n)`` with ``n`` a scalar tensor, so every call
    size shares one trace; with ``jit_compile`` XLA compiles the single step. It returns
    ``(logs, finite)`` like :func:`make_graph_train_function`.
    """
    watched = watched_variables(parts)

    def one_step(x, y):
        train_step(parts, as_float_inputs(x), y)

    step = tf.function(one_step, jit_compile=True) if jit_compile else one_step

    @tf.function
    def train_steps(iterator, n):
        i = tf.constant(0)
        while i < n:
            x, y = next(iterator)  # under a strategy: each replica's slice of the global batch
            on_replicas(parts, step, x, y)
            i += 1
        return {"loss": parts.loss_tracker.result(), **metric_results(parts)}, all_finite(watched)

    return train_steps


def make_eval_function(parts: StepParts, batch_size: int, jit_compile: bool):
    """Compile a full pass over padded, device-resident arrays into one call.

    Takes ``(x, y, weights)`` whose length is a multiple of ``batch_size``; padding rows have
    weight 0 so they count in neither the loss nor the metrics.
    """

    replicas = parts.replicas

    def one_batch(x, y, weights, offset):
        index = replica_rows(offset, batch_size, replicas)
        return eval_step(parts, as_float_inputs(gather_rows(x, index)), tf.gather(y, index), tf.gather(weights, index))

    step = tf.function(one_batch, jit_compile=True) if jit_compile else one_batch

    def batch(x, y, weights, offset):
        loss_sum, weight_sum = on_replicas(parts, step, x, y, weights, offset)
        return summed(parts, loss_sum), summed(parts, weight_sum)

    @tf.function(reduce_retracing=True)
    def evaluate(x, y, weights):
        total = tf.constant(0.0)
        count = tf.constant(0.0)
        rows = weights if parts.strategy is None else parts.strategy.experimental_local_results(weights)[0]
        batches = tf.shape(rows)[0] // batch_size
        i = tf.constant(0)
        while i < batches:
            loss_sum, weight_sum = batch(x, y, weights, i * batch_size)
            total += loss_sum
            count += weight_sum
            i += 1
        return {"loss": tf.math.divide_no_nan(total, count), **metric_results(parts)}

    return evaluate


def any_length(arrays):
    """``tf.TensorSpec``s of ``arrays`` (tensors, nested) that leave the number of rows open."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), arrays)


def make_predict_function(model, jit_compile: bool):
    """Compile one fixed-size prediction batch."""

    @tf.function(jit_compile=jit_compile)
    def predict(x):
        return model(as_float_inputs(x), training=False)

    return predict
