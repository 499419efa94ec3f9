"""The ``tfrecord`` source: sharded TFRecord files streamed through tf.data, never held in memory.

``files`` names the shards of each split (a glob or a list; paths go through ``tf.io.gfile``, so
object stores TensorFlow supports work unchanged), ``features`` says how to parse each record
(``tf.train.Example``: name → dtype and shape, ``image: png|jpeg`` for encoded images, ``string``
or ``text`` for strings) and ``label`` which feature is the label.

:func:`build` checks every split before training starts (globs match, every shard reads to its
end, every record parses: each feature present with the right kind and length, a bad record named
by shard and number) while it counts the examples and the label range; it returns
:class:`Streams`, whose :class:`Stream` splits build the tf.data pipelines the engine trains and
evaluates from:

- training order depends only on (seed, epoch): the shard order is a permutation seeded by
  (seed, epoch); up to 8 shards are read at once, taking runs of
  ``RUN`` (256) consecutive records from each in turn — fewer, ``shuffle_buffer / shards``, when the
  buffer is small; then each block of ``shuffle_buffer`` consecutive examples is permuted by
  stateless random keys drawn from (seed, epoch, block) — TensorFlow's global seed plays no part; an
  epoch is ``ceil(n / batch)`` full batches (the last one filled with the epoch's first examples, as
  a next pass over the same stream would give them), so a resume skips the batches already trained
  and continues exactly;
- shards are read in runs of records and blocks permuted as whole tensors of serialized records,
  sliced into batches, each batch parsed by one ``tf.io.parse_example`` (no tf.data work per record),
  images decoded inside the pipeline, batches prefetched; one pipeline runs through many epochs;
- evaluation reads the shards in order, once, padding the last batch with zero-weight rows.

TensorFlow is imported inside the functions that need it; importing this module imports pydantic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from fmtrain.config.base import StrictModel
from fmtrain.data.encoding import EncoderState
from fmtrain.data.sources import SOURCES, Loaded, SourceConfig
from fmtrain.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from fmtrain.data import DataInfo

SCAN_BATCH = 1024
"""Records read per batch while counting a shard (labels only are parsed)."""
DEFAULT_ADAPT_SAMPLES = 10_000
DEFAULT_SHUFFLE_BUFFER = 10_000
RUN = 256
"""Consecutive records read from one shard in turn while training (at most; see :func:`_run_length`)."""
EPOCHS_AT_ONCE = 1000
"""Epochs one training pipeline of TFRecord shards runs through before the feed builds the next one."""
RAM_BUDGET = 64 * 2**20
"""Bytes tf.data's autotuning may spend on the buffers of a stream (uncapped: half the RAM)."""

DType = Literal["float32", "int64", "int32", "uint8", "string"]


class FeatureSpec(StrictModel):
    """How one feature of a record is parsed: its dtype and the shape of one example's value."""

    dtype: DType = "float32"
    """float32 (a float_list), int64/int32/uint8 (an int64_list), string (a bytes_list; `text` is the same)."""
    shape: list[int] = Field(default_factory=list)
    """Shape of one example's value, [] for a scalar; an encoded image: [height, width, channels]."""
    image: Literal["png", "jpeg"] | None = None
    """The value is one encoded image (a bytes_list), decoded to uint8 pixels of `shape` inside tf.data."""
    raw: bool = False
    """The value is the example's array as raw little-endian bytes of `dtype` (one bytes_list entry, as
    numpy's tobytes() writes it): far cheaper to parse than a float_list or int64_list; fmtrain data pack writes it."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `pixels: float32` or `review: text` for a scalar of that dtype.
        if isinstance(value, str):
            value = {"dtype": value}
        if isinstance(value, dict) and value.get("dtype") == "text":
            value = {**value, "dtype": "string"}
        return value

    @model_validator(mode="after")
    def _image_has_a_shape(self) -> FeatureSpec:
        if self.raw and (self.image is not None or self.dtype == "string"):
            raise ValueError("raw holds the bytes of a numeric array; remove raw for images and strings")
        if self.image is not None:
            if len(self.shape) != 3 or self.shape[2] not in (1, 3, 4):
                raise ValueError(f"an encoded {self.image} image needs shape [height, width, channels] "
                                 f"with 1, 3 or 4 channels, found {self.shape}")
            if self.dtype not in ("uint8", "float32"):
                raise ValueError(f"an encoded image decodes to uint8 pixels; remove dtype {self.dtype}")
        if any(d < 1 for d in self.shape):
            raise ValueError(f"every dimension of shape must be ≥ 1, found {self.shape}")
        return self

    @property
    def kind(self) -> str:
        """The ``tf.train.Feature`` list the value is stored in."""
        if self.image is not None or self.dtype == "string" or self.raw:
            return "bytes_list"
        return "float_list" if self.dtype == "float32" else "int64_list"

    @property
    def values(self) -> int:
        """How many values one example stores (1 for an encoded image or a string)."""
        return 1 if self.image is not None or self.raw else math.prod(self.shape)

    @property
    def raw_bytes(self) -> int:
        """Bytes of one example's raw value."""
        return math.prod(self.shape) * {"float32": 4, "int64": 8, "int32": 4, "uint8": 1}[self.dtype]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)


class SplitFiles(StrictModel):
    """The shards of each split."""

    train: str | list[str]
    """Training shards: a glob (`data/train-*.tfrecord`) or a list of files/globs."""
    val: str | list[str] | None = None
    """Validation shards (none: no validation split)."""
    test: str | list[str] | None = None
    """Test shards (none: no test split)."""


def check_adapt_samples(value: int | str) -> int | str:
    """``adapt_samples`` of a streamed source: a positive count, or ``all``."""
    if isinstance(value, int) and value < 1:
        raise ValueError("adapt_samples must be ≥ 1, or all")
    return value


class TfrecordSource(SourceConfig):
    """Sharded TFRecord files of tf.train.Example records, streamed through tf.data (data larger than memory)."""

    source: Literal["tfrecord"] = "tfrecord"
    """tfrecord: shards of tf.train.Example records, streamed."""
    files: SplitFiles
    """Shards per split: {train: GLOB or [FILES], val: ..., test: ...}; validation_split/test_split are not used."""
    features: dict[str, FeatureSpec]
    """Feature name → {dtype, shape, image}; the label's entry too. One input feature gives one array input,
    several give named inputs."""
    label: str
    """The feature that is the label (int64: class ids → classification; float32 → regression)."""
    classes: list[str] | None = None
    """Class names, index i naming class i (default: the ids 0..max seen in training)."""
    shuffle_buffer: int = Field(DEFAULT_SHUFFLE_BUFFER, ge=1)
    """Training examples permuted together (in blocks, after the seeded shard order; memory grows with it)."""
    adapt_samples: int | Literal["all"] = DEFAULT_ADAPT_SAMPLES
    """Training examples (the first, in shard order) that adapting preprocessing steps (standardize,
    text_vectorize, lookup, rescale with range) are fitted on; `all` reads every training example into memory."""

    streams: ClassVar[bool] = True

    @field_validator("adapt_samples")
    @classmethod
    def _positive(cls, value):
        return check_adapt_samples(value)

    def build_streams(self, *, seed: int, encoders: EncoderState) -> Streams:
        """Check and count every shard: :func:`build`."""
        return build(self, seed=seed, encoders=encoders)

    @model_validator(mode="after")
    def _label_is_a_feature(self) -> TfrecordSource:
        if self.label not in self.features:
            raise ValueError(f"label '{self.label}' is not in features ({', '.join(self.features)}); "
                             f"add it, e.g. {self.label}: int64")
        label = self.features[self.label]
        if label.image is not None or label.dtype == "string" or label.raw:
            raise ValueError(f"label '{self.label}' must be numbers (int64 class ids or float32 targets)")
        if len(self.features) < 2:
            raise ValueError("features lists only the label; add the input features")
        return self


@SOURCES.register("tfrecord", params=TfrecordSource)
def load_tfrecord(cfg: TfrecordSource, saved: EncoderState) -> Loaded:
    """Shards of tf.train.Example records (data.files per split, data.features, data.label), streamed by tf.data."""
    raise DataError("source 'tfrecord' streams; fmtrain.data.build returns its Streams")  # build() dispatches


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class LabelShape:
    """How the label reaches the loss: what :meth:`fmtrain.targets.Targets.shape_labels` does to arrays."""

    dtype: str = "int32"
    one_hot: int | None = None
    column: bool = False
    """Reshape (n,) labels to (n, 1)."""

    @classmethod
    def like(cls, shaped, raw, one_hot: int | None) -> LabelShape:
        """The shaping that turned ``raw`` into ``shaped`` (both numpy arrays)."""
        return cls(dtype=str(shaped.dtype), one_hot=one_hot, column=shaped.ndim == raw.ndim + 1 and not one_hot)


# --------------------------------------------------------------------------- streams


class ShardedStream:
    """What every streamed split shares (a frozen dataclass with ``files``, ``count``, ``shuffle_buffer``,
    ``limit`` and ``labels``): the seeded epoch order, skipping to a step, padded evaluation, the first
    examples as arrays, label shaping. A subclass says how files become examples: ``_records(files)``
    (a dataset of single examples, in file order; ``files`` its :meth:`_file_columns`, or their rows in
    an epoch's order) and ``_parse_raw(batch)`` (a batch of them → ``(x, y)``)."""

    files: tuple[str, ...]
    count: int
    shuffle_buffer: int
    limit: int | None
    labels: LabelShape | None

    def __len__(self) -> int:
        return self.count

    def head(self, n: int):
        return replace(self, count=min(n, self.count), limit=min(n, self.count))

    def with_labels(self, labels: LabelShape):
        return replace(self, labels=labels)

    def _records(self, files):
        raise NotImplementedError

    def _parse_raw(self, batch):
        raise NotImplementedError

    def _chunks(self, files, run: int):
        """The examples of ``files`` (in their order, ``limit`` applied) as batches of at most ``run``."""
        return self._records(files).batch(run)

    # ------------------------------------------------------------- pipelines

    @property
    def epochs_at_once(self) -> int:
        """Epochs one training pipeline covers: its file orders are a table inside it, and ``_records``
        gets the rows of :meth:`_file_columns` in each epoch's order (--smoke: one epoch; building a
        pipeline per epoch costs about a second)."""
        return 1 if self.limit is not None else max(1, min(EPOCHS_AT_ONCE, 2**20 // len(self.files)))

    def _file_columns(self):
        """What ``_records`` reads of each file, as tensors of one row per file: here the names."""
        import tensorflow as tf

        return tf.constant(self.files)

    def train_batches(self, batch_size: int, *, seed: int, epoch: int, shuffle: bool, start: int, steps: int,
                      epochs: int = 1):
        """Batches ``start..steps`` of epoch ``epoch``, then every batch of the ``epochs - 1`` epochs after
        it: a ``tf.data.Dataset`` of ``(x, y)``.

        Each epoch's order depends only on (seed, epoch): the examples of the pass (shards in a seeded
        order, read in runs, see :meth:`_chunks`) in blocks of ``shuffle_buffer``, each permuted by
        stateless keys from (seed, epoch, block); the last batch is filled with the first rows of the
        pass. A block is permuted as one tensor of records and sliced into batches, each parsed at
        once, so no tf.data work happens per record; the blocks before ``start`` are skipped unparsed.
        One dataset for several epochs is built (traced, optimized) once and reads on across their borders.
        """
        import numpy as np
        import tensorflow as tf

        def plan(e: int) -> tuple[list[int], int]:
            order = list(range(len(self.files)))
            if shuffle and self.limit is None:
                order = [int(i) for i in np.random.default_rng([seed, e]).permutation(len(self.files))]
            return order, int(np.random.default_rng([seed, e, 1]).integers(2**31 - 1))

        in_graph = epochs > 1 and self.epochs_at_once > 1
        columns = self._file_columns()
        rows = None
        if start or not in_graph:  # mid-epoch (a resume): this epoch's pipeline built apart, with its skip
            order, key = plan(epoch)
            rows = self._epoch_rows(_rows(columns, order), key, batch_size, shuffle, start, steps)
        plans = [plan(e) for e in range(epoch if rows is None else epoch + 1, epoch + epochs)]
        if in_graph:  # the files can be reordered inside the pipeline: one function for every epoch
            table = tf.data.Dataset.from_tensor_slices((np.array([o for o, _ in plans], np.int32),
                                                        np.array([k for _, k in plans], np.int64)))
            later = table.flat_map(lambda o, k: self._epoch_rows(_rows(columns, o), k, batch_size, shuffle, 0, steps))
            rows = later if rows is None else rows.concatenate(later)
        else:
            for o, k in plans:
                rows = rows.concatenate(self._epoch_rows(_rows(columns, o), k, batch_size, shuffle, 0, steps))
        # Every epoch's rows are a whole number of batches, so no batch mixes two epochs. One block is
        # read and permuted ahead while the previous one is sliced into batches, across epoch borders too.
        # Blocks hold serialized records: blocks parsed to dense tensors cost more memory for the same
        # speed (measured: +50-90 MB peak RSS).
        batches = rows.prefetch(1).rebatch(batch_size, drop_remainder=True)
        batches = batches.map(self._parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return _bounded(batches.prefetch(tf.data.AUTOTUNE))

    def _epoch_rows(self, files, key, batch_size: int, shuffle: bool, start: int, steps: int):
        """The records of batches ``start..steps`` of one epoch, in blocks (unparsed, as :meth:`_chunks`
        gives them); ``files`` (in the epoch's order) and ``key`` (its block seed) may be tensors."""
        import tensorflow as tf

        block = self.shuffle_buffer
        n = self.count
        fill = steps * batch_size - n
        skip_blocks, skip_rows = divmod(start * batch_size, block)
        last_block = (n - 1) // block

        def permute(number, records):
            return number, (_permuted(records, key, number) if shuffle else records)

        def blocks(skip: int = 0):
            run = _run_length(len(self.files), block)
            return self._chunks(files, run).rebatch(block).enumerate().skip(skip).map(permute)

        def rows_of(number, rows):
            return tf.nest.map_structure(lambda t: t[tf.where(number == skip_blocks, skip_rows, 0):], rows)

        parsed = blocks(skip_blocks)
        head = _zero_rows(parsed.element_spec[1])
        if skip_blocks == 0 and 0 < fill <= min(block, n) and head is not None:
            # The fill rows are the pass's first rows: kept from block 0 rather than read again.
            def carry(kept, element):
                number, rows = element
                kept = tf.nest.map_structure(lambda k, t: tf.cond(number == 0, lambda: t[:fill], lambda: k), kept, rows)
                out = rows_of(number, rows)
                out = tf.nest.map_structure(
                    lambda o, k: tf.cond(number == last_block, lambda: tf.concat([o, k], 0), lambda: o), out, kept)
                return kept, out

            return parsed.scan(head, carry)
        stream = parsed.map(rows_of)
        if fill > 0:  # read the pass again for the fill rows: the blocks that hold them, cut to them
            sizes = [min(block, n - first) for first in range(0, n, block)]
            needed, got = 0, 0
            while got < fill:
                got += sizes[needed % len(sizes)]
                needed += 1

            def cut(remaining, rows):
                count = tf.cast(tf.shape(tf.nest.flatten(rows)[0])[0], tf.int64)
                taken = tf.minimum(remaining, count)
                return remaining - taken, tf.nest.map_structure(lambda t: t[:taken], rows)

            again = blocks().map(lambda _, rows: rows).repeat().take(needed)
            stream = stream.concatenate(again.scan(tf.constant(fill, tf.int64), cut))
        return stream

    def eval_batches(self, batch_size: int):
        """Every example once, in file order: ``(x, y, weights)`` batches of exactly ``batch_size``,
        the last one padded with copies of its first row at weight 0."""
        import tensorflow as tf

        def pad(x, y):
            n = tf.shape(y)[0]
            extra = batch_size - n

            def fill(t):
                return tf.concat([t, tf.repeat(t[:1], extra, axis=0)], axis=0)

            weights = tf.concat([tf.ones([n]), tf.zeros([extra])], axis=0)
            return tf.nest.map_structure(fill, x), fill(y), weights

        batches = self._records(self._file_columns()).batch(batch_size)
        batches = batches.map(self._parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return _bounded(batches.map(pad).prefetch(tf.data.AUTOTUNE))

    def arrays(self, n: int | None) -> tuple[Any, np.ndarray]:
        """The first ``n`` examples (all with None) in file order, as numpy ``(x, y)``."""
        import numpy as np
        import tensorflow as tf

        records = self._records(self._file_columns())
        if n is not None:
            records = records.take(n)
        parts_x, parts_y = [], []
        for x, y in records.batch(SCAN_BATCH).map(self._parse_raw):
            parts_x.append(tf.nest.map_structure(lambda t: t.numpy(), x))
            parts_y.append(y.numpy())
        if not parts_y:
            raise DataError(f"{self.files[0]}: no records to read")
        x = tf.nest.map_structure(lambda *a: np.concatenate(a), *parts_x) if len(parts_x) > 1 else parts_x[0]
        return x, np.concatenate(parts_y)

    def _parse(self, batch):
        import tensorflow as tf

        x, y = self._parse_raw(batch)
        shaping = self.labels
        if shaping is not None:
            if shaping.one_hot:
                y = tf.one_hot(tf.cast(y, tf.int32), shaping.one_hot, dtype=tf.float32)
            else:
                y = tf.cast(y, shaping.dtype)
                if shaping.column:
                    y = tf.reshape(y, [-1, 1])
        return x, y


@dataclass(frozen=True)
class Stream(ShardedStream):
    """One split's TFRecord shards and how to turn them into batches."""

    files: tuple[str, ...]
    count: int
    features: dict[str, FeatureSpec]
    """The input features (not the label)."""
    label: str | None
    """None: a predict-only stream (:meth:`unlabelled`), whose records need no label."""
    label_spec: FeatureSpec | None
    shuffle_buffer: int
    limit: int | None = None
    """Only the first ``limit`` records in shard order (``--smoke``)."""
    labels: LabelShape | None = None

    def _records(self, files):
        import tensorflow as tf

        names = tf.data.Dataset.from_tensor_slices(files)
        records = names.interleave(tf.data.TFRecordDataset, cycle_length=_cycle(self.files), block_length=1,
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return records.take(self.limit) if self.limit is not None else records

    def _chunks(self, files, run: int):
        """Batches of serialized records: up to 8 shards open at once, ``run`` consecutive records from
        each in turn (``interleave`` with ``block_length=run``, without tf.data work per record). The
        interleave is sequential: a parallel one made peak RSS grow with the data (+57-95 MB from 80 to
        160 MB of shards, against +26) for no speed on two cores, and it runs ahead of training anyway."""
        import tensorflow as tf

        if self.limit is not None:  # --smoke: a few records, read as _records reads them
            return self._records(files).batch(run)
        names = tf.data.Dataset.from_tensor_slices(files)
        return names.interleave(lambda path: tf.data.TFRecordDataset(path).batch(run), cycle_length=_cycle(self.files),
                                block_length=1)

    def _parse_raw(self, serialized):
        """A batch of serialized records → (x, y) with the features' own dtypes; y as stored."""
        import tensorflow as tf

        features = self.features if self.label is None else {**self.features, self.label: self.label_spec}
        parsed = tf.io.parse_example(serialized, {name: _parse_spec(feature) for name, feature in features.items()})
        x = {name: _decode(parsed[name], feature) for name, feature in self.features.items()}
        if self.label is None:  # predict-only: zeros keep the (x, y) shape every pipeline expects
            y = tf.zeros(tf.shape(serialized)[:1], tf.int32)
        else:
            y = parsed[self.label]
        if y.dtype == tf.int64:
            y = tf.cast(y, tf.int32)
        return (next(iter(x.values())) if len(x) == 1 else x), y

    @classmethod
    def unlabelled(cls, files: list[str], features: dict[str, FeatureSpec]) -> Stream:
        """A predict-only stream of ``files``: the input ``features`` parsed, a label in the records ignored.

        Each shard's first record is checked against ``features`` here, so a shard written for another
        model is named before anything runs (its count stays 0: no pass is made to count records).

        Raises:
            DataError: a shard that cannot be read, or whose first record lacks a feature or stores
                it with another kind or length, naming the shard.
        """
        import tensorflow as tf

        for path in files:
            try:
                first = next(iter(tf.data.TFRecordDataset(path).take(1).as_numpy_iterator()), None)
            except tf.errors.OpError as exc:
                raise DataError(f"{path}: cannot read the shard: {exc.message.splitlines()[0]}") from None
            if first is not None:
                _check_record(path, first, features, 1)
        return cls(tuple(files), 0, dict(features), None, None, DEFAULT_SHUFFLE_BUFFER)

    def feature_batches(self, batch_size: int) -> Iterator[Any]:
        """The inputs of every record once, shard after shard in the order of ``files``, as numpy
        batches of ``batch_size`` (the last one shorter): what ``fmtrain predict`` feeds the model.

        Raises:
            DataError: a corrupt shard or a record that does not fit ``features``, naming the shard.
        """
        import tensorflow as tf

        # One shard after the other (no interleave): row i of the output is record i of the files in order.
        batches = tf.data.TFRecordDataset(list(self.files)).batch(batch_size)
        batches = _bounded(batches.map(lambda b: self._parse_raw(b)[0]).prefetch(2))
        iterator = iter(batches)
        while True:
            try:
                x = next(iterator)
            except StopIteration:
                return
            except tf.errors.DataLossError as exc:
                raise DataError(f"{_which_shard(self.files)}: corrupt TFRecord shard "
                                f"({exc.message.splitlines()[0]})") from None
            except tf.errors.InvalidArgumentError:
                for path in self.files:
                    _find_bad_record(path, self.features)
                raise
            yield tf.nest.map_structure(lambda t: t.numpy(), x)


def _bounded(dataset):
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.ram_budget = RAM_BUDGET
    return dataset.with_options(options)


def _rows(columns, order):
    """The rows ``order`` (file indices: a list, or a tensor inside a pipeline) of each of ``columns``."""
    import tensorflow as tf

    return tf.nest.map_structure(lambda column: tf.gather(column, order), columns)


def _cycle(files: list[str]) -> int:
    """Shards read at once."""
    return max(1, min(len(files), 8))


def _run_length(shards: int, block: int) -> int:
    """Consecutive records read from one shard in turn: ``RUN``, or fewer so that a block of the
    shuffle buffer still holds runs of every shard read at once."""
    return max(1, min(RUN, block // max(1, min(shards, 8))))


def _permuted(rows, seed, block_number):
    """The rows of a block in an order drawn from (seed, block number) alone.

    Stateless, unlike ``Dataset.shuffle``, whose order also depends on TensorFlow's global seed.
    """
    import tensorflow as tf

    count = tf.shape(tf.nest.flatten(rows)[0])[:1]
    keys = tf.random.stateless_uniform(count, seed=tf.stack([tf.cast(seed, tf.int64), block_number]))
    order = tf.argsort(keys)
    return tf.nest.map_structure(lambda t: tf.gather(t, order), rows)


def _zero_rows(spec):
    """Tensors of no rows shaped like a block's (``element_spec``); None when a row's shape is not fully known."""
    import tensorflow as tf

    specs = tf.nest.flatten(spec)
    if any(not s.shape[1:].is_fully_defined() for s in specs):
        return None
    return tf.nest.map_structure(lambda s: tf.zeros([0, *s.shape[1:]], s.dtype), spec)


def _parse_spec(feature: FeatureSpec):
    import tensorflow as tf

    if feature.image is not None or feature.raw:
        return tf.io.FixedLenFeature([], tf.string)
    dtype = {"float_list": tf.float32, "int64_list": tf.int64, "bytes_list": tf.string}[feature.kind]
    return tf.io.FixedLenFeature(feature.shape, dtype)


def _decode(values, feature: FeatureSpec):
    """Parsed values of one feature (a batch) → what the model is fed: images decoded, ints narrowed."""
    import tensorflow as tf

    if feature.image is not None:
        height, width, channels = feature.shape
        decode = tf.io.decode_png if feature.image == "png" else tf.io.decode_jpeg

        def one(encoded):
            return tf.ensure_shape(decode(encoded, channels=channels), [height, width, channels])

        return tf.map_fn(one, values, fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8))
    if feature.raw:
        return tf.reshape(tf.io.decode_raw(values, feature.dtype, little_endian=True), [-1, *feature.shape])
    if feature.dtype in ("int32", "uint8"):
        return tf.cast(values, feature.dtype)
    return values


@dataclass(frozen=True)
class Streams:
    """The streamed train, validation and test splits of a streamed source (like :class:`Splits`)."""

    train: ShardedStream
    val: ShardedStream | None
    test: ShardedStream | None
    info: DataInfo
    adapt_samples: int | None
    """Training examples the adapting preprocessing steps see (None: all)."""

    def subset(self, train: int, evaluate: int) -> Streams:
        return replace(self, train=self.train.head(train),
                       val=self.val.head(evaluate) if self.val is not None else None,
                       test=self.test.head(evaluate) if self.test is not None else None)

    def with_labels(self, labels: LabelShape) -> Streams:
        return replace(self, train=self.train.with_labels(labels),
                       val=self.val.with_labels(labels) if self.val is not None else None,
                       test=self.test.with_labels(labels) if self.test is not None else None)


# --------------------------------------------------------------------------- build


def build(cfg: TfrecordSource, *, seed: int, encoders: EncoderState) -> Streams:
    """Check and count every split's shards; the streams and what they hold.

    Raises:
        DataError: a glob matches nothing, a shard is unreadable or corrupt, a record lacks a
            feature or stores it with another kind or length, a label is out of range — each
            naming the file.
    """
    from fmtrain.data import DataInfo

    inputs = {name: spec for name, spec in cfg.features.items() if name != cfg.label}
    label_spec = cfg.features[cfg.label]
    scanned = {}
    for split in ("train", "val", "test"):
        patterns = getattr(cfg.files, split)
        if patterns is None:
            continue
        files = expand_files(patterns, f"data.files.{split}")
        scanned[split] = (files, *_scan(files, cfg.features, cfg.label, split))
    files, count, low, high = scanned["train"]
    if count == 0:
        raise DataError(f"data.files.train: the shards ({files[0]}, …) hold no records")
    classification = label_spec.dtype != "float32" if cfg.task == "auto" else cfg.task == "classification"
    task = "classification" if classification else "regression"
    reason = (f"set in the config (data.task: {cfg.task})" if cfg.task != "auto" else
              f"label feature '{cfg.label}' is {label_spec.dtype}")
    class_names = None
    if classification:
        class_names = list(encoders.label_classes or cfg.classes or
                           [str(i) for i in range(encoders.num_classes or int(high) + 1)])
        for split, (split_files, _, lo, hi) in scanned.items():
            if lo is not None and (lo < 0 or hi >= len(class_names)):
                raise DataError(f"{split_files[0]}: data.files.{split} has label ids {int(lo)}..{int(hi)}, but there "
                                f"are {len(class_names)} classes (data.classes); ids must be 0..{len(class_names) - 1}")
    state = EncoderState(task=task, num_classes=len(class_names),
                         label_classes=class_names if cfg.classes or encoders.label_classes else None
                         ) if classification else EncoderState(task=task)

    def stream(split: str) -> Stream | None:
        if split not in scanned:
            return None
        split_files, split_count, *_ = scanned[split]
        return Stream(tuple(split_files), split_count, inputs, cfg.label, label_spec, cfg.shuffle_buffer)

    shapes = {name: spec.example_shape for name, spec in inputs.items()}
    info = DataInfo(
        source=f"tfrecord {len(files)} shard(s) {files[0]}{' …' if len(files) > 1 else ''}",
        task=task, num_classes=len(class_names) if class_names else None, class_names=class_names,
        feature_names=None, input_shape=next(iter(shapes.values())) if len(shapes) == 1 else shapes,
        encoders=state, label_shape=tuple(label_spec.shape), task_reason=reason,
        streamed={"features": {name: spec.model_dump() for name, spec in cfg.features.items()}, "label": cfg.label,
                  "files": {split: list(found[0]) for split, found in scanned.items()},
                  "counts": {split: found[1] for split, found in scanned.items()},
                  "adapt_samples": cfg.adapt_samples, "shuffle_buffer": cfg.shuffle_buffer},
    )
    return Streams(stream("train"), stream("val"), stream("test"), info,
                   adapt_samples=None if cfg.adapt_samples == "all" else cfg.adapt_samples)


def expand_files(patterns: str | list[str], key: str, what: str = "TFRecord shards") -> list[str]:
    """The files a glob or a list of files/globs names (through ``tf.io.gfile``), sorted per pattern.

    Raises:
        DataError: a pattern matches nothing or cannot be listed.
    """
    import tensorflow as tf

    found: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        try:
            matched = sorted(tf.io.gfile.glob(pattern))
        except tf.errors.OpError as exc:
            raise DataError(f"{key}: cannot list '{pattern}': {exc.message.splitlines()[0]}") from None
        if not matched:
            raise DataError(f"{key}: '{pattern}' matches no file; give a glob or list of {what}")
        found += [path for path in matched if path not in found]
    return found


def _scan(files: list[str], features: dict[str, FeatureSpec], label: str, split: str):
    """Parse every record of every shard (batched, as training will): (records, lowest label, highest label).

    Each shard is summarized inside one tf.data reduction (no tensor per batch reaches Python, so
    memory stays flat however large the shards). A record that lacks a feature or stores it with
    another kind or length is then named by shard and number, so a bad record stops ``fit`` before
    training rather than part-way through it.
    """
    import tensorflow as tf

    spec = {name: _parse_spec(feature) for name, feature in features.items()}
    raw = {name: feature.raw_bytes for name, feature in features.items() if feature.raw}

    def summary(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        checks = [tf.debugging.assert_equal(tf.strings.length(parsed[name]), size, message=f"raw '{name}'")
                  for name, size in raw.items()]
        with tf.control_dependencies(checks):
            values = tf.reshape(tf.cast(parsed[label], tf.float64), [-1])
        return tf.size(values, tf.int64), tf.reduce_min(values), tf.reduce_max(values)

    def combine(state, batch):
        return state[0] + batch[0], tf.minimum(state[1], batch[1]), tf.maximum(state[2], batch[2])

    start = (tf.constant(0, tf.int64), tf.constant(float("inf"), tf.float64), tf.constant(-float("inf"), tf.float64))
    count, low, high = 0, None, None
    for path in files:
        try:
            batches = tf.data.TFRecordDataset(path).batch(SCAN_BATCH).map(summary)
            read, lo, hi = (t.numpy() for t in batches.reduce(start, combine))
        except tf.errors.DataLossError as exc:
            raise DataError(f"{path}: corrupt TFRecord shard ({exc.message.splitlines()[0]}); "
                            "rewrite it, or remove it from data.files") from None
        except tf.errors.InvalidArgumentError:
            _find_bad_record(path, features)
            raise
        except tf.errors.OpError as exc:
            raise DataError(f"{path}: cannot read the shard: {exc.message.splitlines()[0]}") from None
        if not read:
            raise DataError(f"{path}: the shard holds no records; remove it from data.files.{split}")
        count += int(read)
        low = lo if low is None else min(low, lo)
        high = hi if high is None else max(high, hi)
    return count, low, high


def _which_shard(files: tuple[str, ...]) -> str:
    """The first of ``files`` that does not read to its end (found after a stream over all of them failed)."""
    import tensorflow as tf

    for path in files:
        try:
            tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1)
        except tf.errors.OpError:
            return path
    return ", ".join(files)


def _find_bad_record(path: str, features: dict[str, FeatureSpec]) -> None:
    """Raise the DataError that names the first record of ``path`` that does not fit ``features``."""
    import tensorflow as tf

    for number, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), start=1):
        _check_record(path, record, features, number)


def _check_record(path: str, raw: bytes, features: dict[str, FeatureSpec], number: int) -> None:
    """Record ``number`` of a shard holds every feature, in the list its dtype reads, with its length."""
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(raw)
    except Exception:  # protobuf's DecodeError
        raise DataError(f"{path}: record {number} is not a tf.train.Example; "
                        "write records with tf.train.Example(...).SerializeToString()") from None
    stored = example.features.feature
    for name, spec in features.items():
        if name not in stored:
            raise DataError(f"{path}: record {number} has no feature '{name}' (data.features.{name}); "
                            f"it has {', '.join(sorted(stored)) or 'none'}")
        kind = stored[name].WhichOneof("kind")
        if kind != spec.kind:
            what = f"image: {spec.image}" if spec.image else f"dtype {spec.dtype}"
            raise DataError(f"{path}: record {number} stores feature '{name}' as a {kind} but data.features.{name} "
                            f"says {what}, which reads a {spec.kind}; {_dtype_hint(kind)}")
        length = len(getattr(stored[name], kind).value)
        if spec.raw and length == 1 and len(stored[name].bytes_list.value[0]) != spec.raw_bytes:
            raise DataError(f"{path}: record {number} holds {len(stored[name].bytes_list.value[0])} bytes of feature "
                            f"'{name}' but data.features.{name} (raw {spec.dtype}, shape {spec.shape}) needs "
                            f"{spec.raw_bytes}")
        if length != spec.values:
            raise DataError(f"{path}: record {number} holds {length} value(s) of feature '{name}' but "
                            f"data.features.{name} shape {spec.shape} needs {spec.values}")


def _dtype_hint(kind: str | None) -> str:
    return {"float_list": "set dtype: float32", "int64_list": "set dtype: int64 (or int32, uint8)",
            "bytes_list": "set dtype: string, or image: png|jpeg"}.get(kind or "", "the feature is empty")


__all__ = ["FeatureSpec", "LabelShape", "ShardedStream", "SplitFiles", "Stream", "Streams", "TfrecordSource", "build",
           "check_adapt_samples", "expand_files"]
