"""How batches reach the compiled training loop.

``GraphFeed`` keeps the arrays on the device and gathers each shuffled batch by index inside
the compiled loop (no Python per batch); ``DatasetFeed`` gathers the same batches in a tf.data
pipeline on the host and prefetches them. Both follow :func:`epoch_order`, so for the same
seed and epoch they train on the same batches in the same order, and a resumed run continues
mid-epoch exactly. Every batch has the same shape: the last batch of an epoch is filled from
the start of the epoch's order, so nothing retraces and XLA compiles once.

``StreamFeed`` trains from a :class:`BatchStream` (a streamed source's training split): data
larger than memory. Its order also depends only on (seed, epoch), and a resume mid-epoch skips
the batches already trained, so it continues exactly.
"""

from __future__ import annotations

import math
import operator
from typing import Protocol

import numpy as np
import tensorflow as tf

from fmtrain.engine.device import INPUT_SHARDING
from fmtrain.engine.steps import gather_rows


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def epoch_order(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The example indices of one epoch, filled to a whole number of batches.

    Depends only on (seed, epoch), so a resumed run sees the same order.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    total = steps_per_epoch(n, batch_size) * batch_size
    if total > n:
        order = np.concatenate([order, np.resize(order, total - n)])
    return order.astype(np.int32)


def distributed(dataset, strategy):
    """A dataset of global batches; under a strategy each element is split into one slice per replica,
    in order (``strategy.experimental_distribute_dataset``), every worker reading the whole input
    (auto-shard policy ``device.INPUT_SHARDING``, set rather than left to TensorFlow's AUTO)."""
    if strategy is None:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(tf.data.experimental.AutoShardPolicy,
                                                                INPUT_SHARDING.upper())
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def replicated(value, strategy):
    """``value`` (tensors) copied onto every replica's device, so each replica gathers its slice of a
    batch from its own memory (a PerReplica that ``strategy.run`` unpacks); as is without a strategy."""
    if strategy is None:
        return value
    devices = iter(strategy.extended.worker_devices)  # this worker's, in the order of its replicas

    def copy(_context):
        with tf.device(next(devices)):
            return tf.nest.map_structure(tf.identity, value)

    return strategy.experimental_distribute_values_from_function(copy)


def to_device(x):
    return tf.nest.map_structure(tf.convert_to_tensor, x)


class DeviceCopies:
    """Device copies of in-memory arrays, made once per array object and reused while the same
    objects come back: a run's validation set each epoch, its training set in each phase.

    Copying is not free (the seed MLP's 48k MNIST images: 40–90 ms, a tenth of a 3-epoch fit at
    batch 256). Identity is the key, so the arrays must not change in place between calls; fmtrain
    never changes them (preprocessing builds new arrays, augmentation runs in the graph).
    """

    def __init__(self) -> None:
        self._copies: dict[object, tuple[tuple, object]] = {}

    def get(self, key: object, arrays: tuple, copy):
        """``copy()``'s result, made again only when ``arrays`` are not the objects last seen for ``key``."""
        seen = self._copies.get(key)
        if seen is not None and len(seen[0]) == len(arrays) and all(map(operator.is_, seen[0], arrays)):
            return seen[1]
        self._copies.pop(key, None)  # the old copy goes before the new one is made (and stays gone if it fails)
        made = copy()
        self._copies[key] = (arrays, made)
        return made


class GraphFeed:
    """In-memory arrays held as device tensors; the epoch order is the only per-epoch input."""

    kind = "graph"

    def __init__(self, x, y, batch_size: int, seed: int, shuffle: bool, strategy, *, copies: DeviceCopies):
        self.n = len(y)
        self.x, self.y = copies.get("train", (x, y), lambda: (
            replicated(to_device(x), strategy), replicated(tf.convert_to_tensor(y), strategy)))
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.steps = steps_per_epoch(self.n, batch_size)
        self._order = None

    def begin_epoch(self, epoch: int) -> None:
        self._order = tf.constant(epoch_order(self.n, self.batch_size, self.seed, epoch, self.shuffle))

    def args(self, start: int, n: int) -> tuple:
        b = self.batch_size
        return (self.x, self.y, self._order[start * b:(start + n) * b])


class DatasetFeed:
    """A tf.data pipeline over in-memory arrays: batches of :func:`epoch_order`, prefetched.

    Each element is one batch, gathered by index on the host, so the pipeline prepares the
    next batches while the device trains. ``cache`` has nothing to do here: the arrays are
    already in memory and nothing is decoded per example.
    """

    kind = "dataset"

    def __init__(self, x, y, batch_size: int, seed: int, shuffle: bool, cache: bool, prefetch, strategy=None):
        self.n = len(y)
        self.strategy = strategy
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.steps = steps_per_epoch(self.n, batch_size)
        self.buffer = tf.data.AUTOTUNE if prefetch == "auto" else int(prefetch)
        with tf.device("/cpu:0"):  # tf.data runs on the host; keep its source there too
            x, y = to_device(x), tf.convert_to_tensor(y)
        self._batch = lambda index: (gather_rows(x, index), tf.gather(y, index))
        self._order: np.ndarray | None = None
        self._iterator = None
        self._next_step = -1

    def begin_epoch(self, epoch: int) -> None:
        self._order = epoch_order(self.n, self.batch_size, self.seed, epoch, self.shuffle).reshape(self.steps, -1)
        self._iterator, self._next_step = None, -1

    def args(self, start: int, n: int) -> tuple:
        if self._iterator is None or start != self._next_step:
            # A new stream from batch `start` of this epoch (the first call, or a resume mid-epoch).
            batches = tf.data.Dataset.from_tensor_slices(self._order[start:])
            batches = batches.map(self._batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            self._iterator = iter(distributed(batches.prefetch(self.buffer), self.strategy))
        self._next_step = start + n
        return (self._iterator, tf.constant(n, tf.int32))


class BatchStream(Protocol):
    """What :class:`StreamFeed` trains from (``fmtrain.data.tfrecord.Stream``): examples in files."""

    def __len__(self) -> int: ...

    @property
    def epochs_at_once(self) -> int:
        """How many epochs one :meth:`train_batches` call should cover."""
        ...

    def train_batches(self, batch_size: int, *, seed: int, epoch: int, shuffle: bool, start: int,
                      steps: int, epochs: int = 1) -> tf.data.Dataset:
        """Batches ``start..steps`` of epoch ``epoch`` and all of the ``epochs - 1`` epochs after it,
        ``(x, y)`` of ``batch_size`` rows, each epoch in an order that depends only on (seed, epoch)."""
        ...

    def eval_batches(self, batch_size: int) -> tf.data.Dataset:
        """Every example once: ``(x, y, weights)`` batches of ``batch_size`` rows, padding at weight 0."""
        ...


class StreamFeed:
    """Batches streamed from files through tf.data (data larger than memory), prefetched.

    The epoch is ``ceil(n / batch_size)`` full batches of the stream's seeded order. One pipeline
    covers the stream's ``epochs_at_once`` epochs, so it is built once (not once per epoch: building
    and optimizing it takes about a second) and reads the next epoch's first block while the last
    batches of an epoch train. A call that does not continue where the last one ended (the first, a
    resume mid-epoch, the end of the epochs covered) opens a new pipeline at that epoch and skips the
    batches before it, so the batches trained are the same.
    """

    kind = "dataset"

    def __init__(self, stream: BatchStream, batch_size: int, seed: int, shuffle: bool, strategy=None):
        self.stream, self.n = stream, len(stream)
        self.strategy = strategy
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.steps = steps_per_epoch(self.n, batch_size)
        self._epoch = 0
        self._iterator = None
        self._next: tuple[int, int] | None = None
        """(epoch, step) the iterator yields next."""
        self._until = 0
        """The first epoch the iterator does not cover."""
        self.pipelines = 0
        """Pipelines opened so far."""

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def args(self, start: int, n: int) -> tuple:
        if self._iterator is None or self._next != (self._epoch, start) or self._epoch >= self._until:
            epochs = max(1, self.stream.epochs_at_once)
            batches = self.stream.train_batches(self.batch_size, seed=self.seed, epoch=self._epoch,
                                                shuffle=self.shuffle, start=start, steps=self.steps, epochs=epochs)
            self._iterator = iter(distributed(batches, self.strategy))
            self._until = self._epoch + epochs
            self.pipelines += 1
        self._next = (self._epoch + 1, 0) if start + n >= self.steps else (self._epoch, start + n)
        return (self._iterator, tf.constant(n, tf.int32))


def padded(x, y, batch_size: int):
    """Pad arrays to a multiple of ``batch_size``; return (x, y, weights) as device tensors."""
    n = len(y)
    total = steps_per_epoch(n, batch_size) * batch_size

    def pad(a):
        # Copies of the first row (any dtype, strings included); their weight is 0.
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[:1], total - n, axis=0)]) if total > n else a

    weights = np.concatenate([np.ones(n, np.float32), np.zeros(total - n, np.float32)])
    return to_device(tf.nest.map_structure(pad, x)), tf.convert_to_tensor(pad(y)), tf.convert_to_tensor(weights)
