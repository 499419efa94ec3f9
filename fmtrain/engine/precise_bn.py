"""Precise batch norm: recompute BatchNormalization statistics over training batches after training.

A BatchNormalization layer normalizes with the batch's own mean and variance in training and
with its moving averages at inference. With Keras' momentum of 0.99 the moving averages need a
few hundred steps to forget their start (mean 0, variance 1) and to catch up with weights that
keep changing, so a short run can be right in training mode and at chance in inference mode
(a 3-class image folder of 90 images, 15 epochs: accuracy 1.0 in the epoch line, 0.33 after).
As pycls/Detectron2 do (``compute_precise_bn_stats``), the statistics are set, once training
has finished, to the average of the batch statistics of the final weights over up to
:data:`PRECISE_BN_SAMPLES` training examples, in batches of the training batch size.

How: each target layer's momentum is set to 0 (so after a forward pass in training mode its
moving statistics hold that batch's moments), a fresh ``tf.function`` runs the batches and sums
the moments, and the averages are assigned. The function is traced after the change because a
traced function keeps the momentum it saw as a constant; the training function, traced with
the real momentum, is never called again. Every other variable the passes touch (dropout and
augmentation seed state) is put back, so only the statistics change: trainable weights and the
optimizer are never touched. It runs once, after the last epoch, so checkpoints (and resume)
are unaffected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fmtrain.engine.feeds import epoch_order
from fmtrain.engine.steps import as_float_inputs, gather_rows

PRECISE_BN_SAMPLES = 8192
"""Training examples whose batch statistics are averaged (pycls' default, ``BN.NUM_SAMPLES_PRECISE``);
at most one epoch's worth. 0 turns precise batch norm off."""
# The example order is drawn from (seed, this stream), apart from the training epochs' orders.
_ORDER_STREAM = 1_000_003


@dataclass(frozen=True)
class PreciseBN:
    """What :func:`recompute_bn_statistics` did."""

    layers: int
    """BatchNormalization layers whose statistics were recomputed."""
    batches: int
    batch_size: int
    samples: int
    """Rows fed: ``batches`` × ``batch_size`` (a small training set repeats rows to fill the last batch)."""
    seconds: float


def trainable_batch_norms(model) -> list:
    """The BatchNormalization layers training updates: trainable ones, nested models included.

    Frozen layers (``trainable=False``, also set by freezing an enclosing model) run in inference
    mode in Keras 3 and keep their statistics; renormalizing layers keep their own scheme.
    """
    import keras

    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable and not layer.renorm]


def recompute_bn_statistics(model, x, *, batch_size: int, seed: int,
                            samples: int = PRECISE_BN_SAMPLES) -> PreciseBN | None:
    """Set every trainable BatchNormalization layer's moving mean and variance to the average of its
    batch moments over up to ``samples`` training examples, in batches of ``batch_size``.

    Args:
        model: the trained ``keras.Model``.
        x: the training inputs (an array or a dict of arrays), as training saw them.
        batch_size: the training batch size; batch moments depend on it.
        seed: picks the examples (shuffled, like an epoch), so a rerun or a resumed run gets the same.
        samples: examples to use, at most one epoch's worth; 0 does nothing.

    Returns:
        What was done, or None when the model has no BatchNormalization layer that trains (or
        ``samples`` is 0).
    """
    import tensorflow as tf

    layers = trainable_batch_norms(model)
    if not layers or samples <= 0:
        return None
    started = time.perf_counter()
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    rows = batch_rows(n, batch_size, seed, samples)
    batches = len(rows)
    inputs = tf.nest.map_structure(lambda a: tf.convert_to_tensor(np.asarray(a)[rows.reshape(-1)]), x)

    statistics = [v for layer in layers for v in (layer.moving_mean, layer.moving_variance)]
    tracked = {id(v) for v in statistics}
    others = [v for v in model.variables if id(v) not in tracked and not v.trainable]
    saved_others = [v.numpy() for v in others]
    before = [v.numpy() for v in statistics]
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        sums = make_batch_moments_function(model, statistics, batch_size)(inputs)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for variable, value in zip(others, saved_others, strict=True):
            variable.assign(value)

    updated = 0
    for i in range(len(layers)):
        mean, variance = statistics[2 * i], statistics[2 * i + 1]
        if np.array_equal(mean.numpy(), before[2 * i]) and np.array_equal(variance.numpy(), before[2 * i + 1]):
            continue  # called with training=False inside the model (a backbone run in inference mode): left alone
        mean.assign(tf.cast(sums[2 * i] / batches, mean.dtype))
        variance.assign(tf.cast(sums[2 * i + 1] / batches, variance.dtype))
        updated += 1
    if not updated:
        return None
    return PreciseBN(layers=updated, batches=batches, batch_size=batch_size, samples=batches * batch_size,
                     seconds=round(time.perf_counter() - started, 4))


def batch_rows(n: int, batch_size: int, seed: int, samples: int = PRECISE_BN_SAMPLES) -> np.ndarray:
    """The training rows :func:`recompute_bn_statistics` uses, one batch per row of the result:
    a shuffled epoch order (the last batch filled from its start), cut to ``samples`` examples
    but never below one batch."""
    order = epoch_order(n, batch_size, seed, _ORDER_STREAM, shuffle=True)
    batches = max(1, min(len(order) // batch_size, samples // batch_size))
    return order[:batches * batch_size].reshape(batches, batch_size)


def make_batch_moments_function(model, statistics: list, batch_size: int):
    """Compile forward passes in training mode over consecutive batches of the given inputs,
    returning the sum over batches of each variable in ``statistics`` as it stands after each pass.

    With the layers' momentum at 0 those values are each batch's moments. Traced on first call,
    so it sees the momentum set at that time.
    """
    import tensorflow as tf

    @tf.function
    def batch_moments(x):
        steps = tf.shape(tf.nest.flatten(x)[0])[0] // batch_size
        sums = [tf.zeros(v.shape, tf.float32) for v in statistics]
        for i in tf.range(steps):
            index = i * batch_size + tf.range(batch_size)
            model(as_float_inputs(gather_rows(x, index)), training=True)
            sums = [total + tf.cast(v.value, tf.float32) for total, v in zip(sums, statistics, strict=True)]
        return sums

    return batch_moments
