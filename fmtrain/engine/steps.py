"""Pure tensor code for one training or evaluation step, and the compiled loops around them.

Nothing here prints, writes files or touches numpy: the Python loop in ``trainer.py`` and
the callbacks own all of that. Each ``make_*_function`` builds its ``tf.function`` once;
the number of steps per call is a tensor argument, so changing it never retraces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import tensorflow as tf


@dataclass
class StepParts:
    """What a step needs: the model, how to score it, and how to improve it."""

    model: Any
    loss_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # per-example losses
    metrics: list[Any]
    optimizer: Any = None
    loss_tracker: Any = None  # keras.metrics.Mean of the training loss


def as_float_inputs(x):
    """Cast numeric feature inputs (uint8 images, float64 tables) to float32 inside the graph.

    Integer ids (token, user, item ids) and strings pass through unchanged.
    """

    def cast(t):
        if t.dtype == tf.uint8 or (t.dtype.is_floating and t.dtype != tf.float32):
            return tf.cast(t, tf.float32)
        return t

    return tf.nest.map_structure(cast, x)


def train_step(parts: StepParts, x, y) -> None:
    """Forward pass, loss, gradients, optimizer update, metric update."""
    with tf.GradientTape() as tape:
        predictions = parts.model(x, training=True)
        loss = tf.reduce_mean(parts.loss_fn(y, predictions))
        if parts.model.losses:
            loss += tf.add_n(parts.model.losses)
    variables = parts.model.trainable_variables
    gradients = tape.gradient(loss, variables)
    parts.optimizer.apply_gradients(zip(gradients, variables))
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


def metric_results(parts: StepParts) -> dict[str, tf.Tensor]:
    return {metric.name: metric.result() for metric in parts.metrics}


def make_graph_train_function(parts: StepParts, batch_size: int, jit_compile: bool):
    """Compile ``n`` training steps over device-resident arrays into one call.

    The returned function takes ``(x, y, order, start, n)``: step ``i < n`` trains on the
    examples ``order[(start + i) * batch_size : ... + batch_size]``, gathered on the device.
    """

    def one_step(x, y, order, offset):
        index = tf.gather(order, offset + tf.range(batch_size))
        x_batch = as_float_inputs(tf.nest.map_structure(lambda t: tf.gather(t, index), x))
        train_step(parts, x_batch, tf.gather(y, index))

    # XLA compiles the step alone: compiling the loop too would make XLA specialise on the
    # loop bound and recompile for every distinct number of steps per call.
    step = tf.function(one_step, jit_compile=True) if jit_compile else one_step

    @tf.function
    def train_steps(x, y, order, start, n):
        i = tf.constant(0)
        while i < n:
            step(x, y, order, (start + i) * batch_size)
            i += 1
        return {"loss": parts.loss_tracker.result(), **metric_results(parts)}

    return train_steps


def make_dataset_train_function(parts: StepParts, jit_compile: bool):
    """Compile ``n`` training steps that pull batches from a tf.data iterator into one call."""

    def one_step(x, y):
        train_step(parts, as_float_inputs(x), y)

    step = tf.function(one_step, jit_compile=True) if jit_compile else one_step

    @tf.function
    def train_steps(iterator, n):
        i = tf.constant(0)
        while i < n:
            x, y = next(iterator)
            step(x, y)
            i += 1
        return {"loss": parts.loss_tracker.result(), **metric_results(parts)}

    return train_steps


def make_eval_function(parts: StepParts, batch_size: int, jit_compile: bool):
    """Compile a full pass over padded, device-resident arrays into one call.

    Takes ``(x, y, weights)`` whose length is a multiple of ``batch_size``; padding rows have
    weight 0 so they count in neither the loss nor the metrics.
    """

    def one_batch(x, y, weights, offset):
        index = offset + tf.range(batch_size)
        x_batch = as_float_inputs(tf.nest.map_structure(lambda t: tf.gather(t, index), x))
        return eval_step(parts, x_batch, tf.gather(y, index), tf.gather(weights, index))

    batch = tf.function(one_batch, jit_compile=True) if jit_compile else one_batch

    @tf.function(reduce_retracing=True)
    def evaluate(x, y, weights):
        total = tf.constant(0.0)
        count = tf.constant(0.0)
        batches = tf.shape(weights)[0] // batch_size
        i = tf.constant(0)
        while i < batches:
            loss_sum, weight_sum = batch(x, y, weights, i * batch_size)
            total += loss_sum
            count += weight_sum
            i += 1
        return {"loss": tf.math.divide_no_nan(total, count), **metric_results(parts)}

    return evaluate


def make_predict_function(model, jit_compile: bool):
    """Compile one fixed-size prediction batch."""

    @tf.function(jit_compile=jit_compile)
    def predict(x):
        return model(as_float_inputs(x), training=False)

    return predict
