"""``image_folder`` and ``text_folder`` with ``stream: true``: the files are read and decoded inside tf.data.

The file list is built as in memory (:func:`fmtrain.data.folders.class_files`: sorted class sub-folders
→ class ids, sorted files) and split by the same rule (:func:`fmtrain.data.splits.plan_splits` on the
files, so each split holds exactly the examples it holds in memory, in the same order); only the paths
and class ids are held, never the pixels or the text. Each split is a :class:`FolderStream`, a
:class:`~fmtrain.data.tfrecord.ShardedStream` whose "shards" are single files: training order is the
file list permuted by (seed, epoch) (a full shuffle, each file being one example), then blocks of
``shuffle_buffer`` permuted by stateless keys; a resume skips the batches trained before any file is
read; evaluation reads the files in split order, the last batch padded.

A model sees exactly the pixels the in-memory loader (Pillow) gives — ``tests/test_stream_folders.py``
checks they are identical: 8-bit PNGs and grey or RGB JPEGs that need no resizing are decoded by
TensorFlow and converted to the colour mode with Pillow's integer formulas; an image to resize (or a
GIF, BMP, 16-bit PNG, CMYK JPEG) is read by Pillow itself inside tf.data (``tf.numpy_function``, a
Python call per such image), since resampling differs between Pillow builds and TensorFlow. Text files
are read as the in-memory loader reads them (a UTF-8 byte-order mark dropped, ``\\r\\n`` and ``\\r``
read as ``\\n``, leading and trailing whitespace stripped).

:func:`build` reads (and decodes) every file once before training, in tf.data, in parallel, keeping only
the sizes, so a corrupt image, an image of another size (without ``image_size``) or a text file that is
not UTF-8 stops ``fit`` with exit 2 naming the file, rather than part-way through training.

TensorFlow is imported inside the functions that need it; importing this module imports pydantic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationInfo

from fmtrain.data import folders, splits
from fmtrain.data.encoding import EncoderState
from fmtrain.data.sources import SourceConfig, fixed_task_reason
from fmtrain.data.tabular import resolve_path
from fmtrain.data.tfrecord import (
    DEFAULT_ADAPT_SAMPLES,
    DEFAULT_SHUFFLE_BUFFER,
    SCAN_BATCH,
    LabelShape,
    ShardedStream,
    Streams,
    check_adapt_samples,
)
from fmtrain.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import tensorflow as tf

CHANNELS = {"rgb": 3, "grayscale": 1, "rgba": 4}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# What Python's str.strip() strips (str.isspace), as an RE2 class.
_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"


def stream_only(value: Any, info: ValidationInfo) -> Any:
    """A key read with ``stream: true`` only (``shuffle_buffer``, ``adapt_samples``): refused without it, on
    its own line; ``adapt_samples`` must be ≥ 1 or ``all``.

    Raises:
        ValueError: the key is set and ``stream`` is not true, or ``adapt_samples`` is below 1.
    """
    if value is not None and not info.data.get("stream", False):
        raise ValueError(f"{info.field_name} is read with stream: true only; add stream: true or remove it")
    if info.field_name == "adapt_samples" and value is not None:
        check_adapt_samples(value)
    return value


# --------------------------------------------------------------------------- decoders


class Decoder(Protocol):
    """How one file becomes one example."""

    what: str
    """The files in messages ("image", "text")."""
    same_size: bool
    """Every file must decode to the first one's height and width (images without ``image_size``)."""

    def example(self, path: tf.Tensor) -> tf.Tensor:
        """A file (its path) → the example the model is fed."""

    def signature(self, shape: tuple[int, ...]) -> tf.TensorSpec:
        """The example's spec, given the shape of one example."""

    def shape(self, first: tuple[int, int]) -> tuple[int, ...]:
        """One example's shape, given the first file's height and width."""

    def check(self, path: tf.Tensor) -> tf.Tensor:
        """A file (its path) → int32 ``[height, width]`` (``[0, 0]`` for text), failing as decoding would."""

    def diagnose(self, path: str) -> None:
        """Raise the DataError that says why ``path`` failed :meth:`check`."""


@dataclass(frozen=True)
class ImageDecoder:
    """An image file → uint8 pixels exactly as :func:`fmtrain.data.images.read_image` (Pillow) gives them.

    8-bit PNGs and baseline grey or RGB JPEGs that need no resizing are decoded by TensorFlow (PNG
    losslessly, JPEG with libjpeg's accurate integer DCT and fancy upsampling, as Pillow decodes it) and
    converted with Pillow's formulas (:func:`to_mode`); any other file — one to resize, a 16-bit PNG, a
    CMYK JPEG, GIF, BMP — is read by Pillow itself (``tf.numpy_function``), because resampling and those
    conversions differ between Pillow builds and TensorFlow.
    """

    color_mode: str
    size: tuple[int, int] | None
    what: str = "image"

    @property
    def channels(self) -> int:
        return CHANNELS[self.color_mode]

    @property
    def same_size(self) -> bool:
        return self.size is None

    def signature(self, shape: tuple[int, ...]):
        import tensorflow as tf

        return tf.TensorSpec(shape, tf.uint8)

    def shape(self, first: tuple[int, int]) -> tuple[int, ...]:
        return (*(self.size or first), self.channels)

    def example(self, path):
        import tensorflow as tf

        contents = tf.io.read_file(path)
        channels = self.channels

        def native(height, width):
            fits = tf.constant(True) if self.size is None else (
                tf.equal(height, self.size[0]) & tf.equal(width, self.size[1]))
            return fits

        def png():
            depth = tf.io.decode_raw(tf.strings.substr(contents, 24, 1), tf.uint8)[0]
            dims = tf.io.decode_raw(tf.strings.substr(contents, 16, 8), tf.int32, little_endian=False)
            height, width = dims[0], dims[1]
            return tf.cond(tf.not_equal(depth, 16) & native(height, width),
                           lambda: to_mode(tf.io.decode_png(contents, channels=0), channels), pillow)

        def jpeg():
            dims = tf.io.extract_jpeg_shape(contents)
            height, width, have = dims[0], dims[1], dims[2]
            decode = lambda: to_mode(tf.io.decode_jpeg(contents, dct_method="INTEGER_ACCURATE"), channels)  # noqa: E731
            return tf.cond(tf.not_equal(have, 4) & native(height, width), decode, pillow)

        def pillow():
            pixels = tf.numpy_function(self._pillow, [path], tf.uint8, stateful=False)
            return tf.ensure_shape(pixels, [None, None, channels])

        is_png = tf.equal(tf.strings.substr(contents, 0, 8), PNG_SIGNATURE)
        is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), JPEG_SIGNATURE)
        return tf.cond(is_png, png, lambda: tf.cond(is_jpeg, jpeg, pillow))

    def _pillow(self, path):
        from fmtrain.data.images import read_image

        if not isinstance(path, bytes):  # eagerly, numpy_function hands over a 0-d array
            path = path.item()
        return read_image(Path(path.decode()), size=self.size, color_mode=self.color_mode)

    def check(self, path):
        import tensorflow as tf

        return tf.shape(self.example(path))[:2]

    def diagnose(self, path: str) -> None:
        import tensorflow as tf

        self._pillow(path.encode())  # raises the in-memory loader's DataError for a file Pillow cannot read
        try:
            self.check(tf.constant(path))
        except tf.errors.OpError as exc:
            raise DataError(f"{path}: tf.data cannot decode it ({_first_line(exc)}); replace the file, or set "
                            "stream: false") from None
        raise DataError(f"{path}: could not be decoded; remove or replace the file")


@dataclass(frozen=True)
class TextDecoder:
    """A UTF-8 text file → one string, as :func:`fmtrain.data.text.load_text_folder` reads it."""

    what: str = "text"
    same_size: bool = False

    def signature(self, shape: tuple[int, ...]):
        import tensorflow as tf

        return tf.TensorSpec(shape, tf.string)

    def shape(self, first: tuple[int, int]) -> tuple[int, ...]:
        return ()

    def example(self, path):
        import tensorflow as tf

        text = tf.strings.regex_replace(tf.io.read_file(path), "^\ufeff", "", replace_global=False)  # utf-8-sig
        text = tf.strings.regex_replace(text, "\r\n?", "\n")  # Python's universal newlines
        return tf.strings.regex_replace(text, f"^{_SPACE}+|{_SPACE}+$", "")

    def check(self, path):
        import tensorflow as tf

        # The result depends on the strict transcoding, so it runs (and fails on bytes that are not UTF-8).
        valid = tf.strings.unicode_transcode(tf.io.read_file(path), "UTF-8", "UTF-8", errors="strict")
        return tf.stack([tf.strings.length(valid), tf.constant(0)])

    def diagnose(self, path: str) -> None:
        try:
            _read(path).decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None
        raise DataError(f"{path}: could not be read as UTF-8 text; save the file as UTF-8")


def _read(path: str) -> bytes:
    import tensorflow as tf

    try:
        return tf.io.read_file(path).numpy()
    except tf.errors.OpError as exc:
        raise DataError(f"{path}: cannot read the file ({_first_line(exc)})") from None


def _first_line(exc) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__


# --------------------------------------------------------------------------- Pillow's pixels in TensorFlow


def to_mode(pixels, channels: int):
    """Decoded pixels (1, 2, 3 or 4 channels) → ``channels``, as Pillow's ``convert`` does: grey is
    repeated, alpha dropped or set to 255, and RGB → grey is ITU-R 601-2 in Pillow's integers
    (``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``)."""
    import tensorflow as tf

    have = tf.shape(pixels)[-1]
    rgb = tf.cond(have < 3, lambda: tf.repeat(pixels[..., :1], 3, axis=-1), lambda: pixels[..., :3])
    if channels == 3:
        return tf.ensure_shape(rgb, [None, None, 3])
    if channels == 1:
        wide = tf.cast(rgb, tf.int32)
        grey = (wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + 0x8000) // 65536
        return tf.cast(grey, tf.uint8)[..., None]
    opaque = tf.fill(tf.shape(pixels[..., :1]), tf.constant(255, tf.uint8))
    alpha = tf.cond(tf.equal(have % 2, 0), lambda: pixels[..., -1:], lambda: opaque)
    return tf.ensure_shape(tf.concat([rgb, alpha], axis=-1), [None, None, 4])


# --------------------------------------------------------------------------- streams


@dataclass(frozen=True)
class FolderStream(ShardedStream):
    """One split's files (one example each) and their class ids, read and decoded in batches by tf.data."""

    files: tuple[str, ...]
    count: int
    classes: tuple[int, ...]
    """The class id of ``files[i]``."""
    decoder: Decoder
    shape: tuple[int, ...]
    """One example's shape: (height, width, channels) for images, () for text."""
    shuffle_buffer: int
    limit: int | None = None
    """Only the first ``limit`` files in split order (``--smoke``)."""
    labels: LabelShape | None = None

    def _file_columns(self) -> dict:
        """Each file's path and class id, so an epoch's order inside a pipeline carries both."""
        import tensorflow as tf

        return {"path": tf.constant(self.files, tf.string), "label": tf.constant(self.classes, tf.int32)}

    def _records(self, files: dict):
        """One record per file: rows of :meth:`_file_columns`, a path and its class id."""
        import tensorflow as tf

        records = tf.data.Dataset.from_tensor_slices(files)
        return records.take(self.limit) if self.limit is not None else records

    def _parse_raw(self, batch):
        """A batch of paths → the decoded examples, read here (after any skipping) and not before."""
        import tensorflow as tf

        decoder, shape = self.decoder, self.shape

        def one(path):
            return tf.ensure_shape(decoder.example(path), shape)

        x = tf.map_fn(one, batch["path"], fn_output_signature=decoder.signature(shape))
        return x, batch["label"]

    def encoded_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every example once, in split order: numpy ``(x, y)`` per block of :data:`SCAN_BATCH` files (what
        ``fmtrain data pack`` writes; memory holds one block)."""
        records = self._records(self._file_columns()).batch(SCAN_BATCH)
        yield from records.map(self._parse_raw).as_numpy_iterator()


# --------------------------------------------------------------------------- build


def build(cfg: SourceConfig, *, seed: int, encoders: EncoderState, suffixes: tuple[str, ...],
          decoder: Decoder, hint: str) -> Streams:
    """List and split a class folder as in memory, read every file once to check it; the streams.

    Args:
        cfg: the ``image_folder`` or ``text_folder`` config (``path``, the split keys, the stream keys).
        seed: seeds the split, as in memory.
        encoders: a trained model's state (its classes), or an empty one.
        suffixes: the files read (as in memory).
        decoder: how a file becomes an example.
        hint: what ``data.path`` should be, for the message when it is not.

    Returns:
        The streamed train, validation and test splits and their :class:`~fmtrain.data.DataInfo`.

    Raises:
        DataError: the folder or a class sub-folder is missing or empty, a split would be empty, a
            file cannot be read or decoded, or (without ``image_size``) an image has another size
            than the first — each naming the file.
    """
    import numpy as np

    from fmtrain.data import DataInfo

    root = resolve_path(cfg.path, cfg.source, hint, folder=True)
    found = folders.class_files(root, suffixes, decoder.what)
    labels = folders.encode_folder_labels(found, encoders)
    plan = splits.plan_splits(cfg, len(labels.y), seed=seed, labels=labels.y)
    paths = np.array([str(path) for path in found.files], dtype=object)
    parts = {"train": plan.train, "val": plan.val, "test": plan.test}
    chosen = {split: (list(paths[index]), labels.y[index]) for split, index in parts.items() if index is not None}
    # Every file once, in the folder's order (as in memory, the first image sets the size the others need).
    first_size = _first_size(str(found.files[0]), decoder)
    _scan(list(paths), decoder, first_size, str(found.files[0]))
    shape = decoder.shape(first_size)
    shuffle_buffer = cfg.shuffle_buffer or DEFAULT_SHUFFLE_BUFFER
    adapt_samples = cfg.adapt_samples or DEFAULT_ADAPT_SAMPLES

    def stream(split: str) -> FolderStream | None:
        if split not in chosen:
            return None
        split_files, ids = chosen[split]
        return FolderStream(tuple(split_files), len(split_files), tuple(int(i) for i in ids), decoder, shape,
                            shuffle_buffer)

    info = DataInfo(
        source=f"{cfg.source} {root}", task="classification", num_classes=len(labels.class_names),
        class_names=list(labels.class_names), feature_names=None, input_shape=shape, encoders=labels.state,
        task_reason=fixed_task_reason(cfg),
        # A digest of each split's file names stands for the list (which may be millions of paths): a resumed
        # run that finds other files, or as many but others, is refused.
        streamed={"folder": str(root),
                  "files": {split: [f"{root} ({_digest(root, files)})"] for split, (files, _) in chosen.items()},
                  "counts": {split: len(files) for split, (files, _) in chosen.items()},
                  "adapt_samples": adapt_samples, "shuffle_buffer": shuffle_buffer},
    )
    return Streams(stream("train"), stream("val"), stream("test"), info,
                   adapt_samples=None if adapt_samples == "all" else adapt_samples)


def _digest(root: Path, files: list[str]) -> str:
    names = "\n".join(str(Path(path).relative_to(root)) for path in files)
    return f"{len(files)} files, sha256 {hashlib.sha256(names.encode()).hexdigest()[:16]}"


def _first_size(path: str, decoder: Decoder) -> tuple[int, int]:
    import tensorflow as tf

    try:
        height, width = (int(v) for v in decoder.check(tf.constant(path)).numpy())
    except tf.errors.OpError:
        decoder.diagnose(path)
        raise
    return height, width


def _scan(files: list[str], decoder: Decoder, size: tuple[int, int], first: str) -> None:
    """Read (and decode) every file in tf.data, in parallel; a file that fails is named.

    A file that fails is dropped by ``ignore_errors``, so the first index missing from the results
    (which arrive in order, a batch at a time: memory stays flat) is the first bad file, which
    :meth:`Decoder.diagnose` then reads again to say why.
    """
    import numpy as np
    import tensorflow as tf

    def check(index, path):
        return index, decoder.check(path)

    checked = (tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string)).enumerate()
               .map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .ignore_errors().batch(SCAN_BATCH).prefetch(1))
    done = 0
    for indices, sizes in checked.as_numpy_iterator():
        gaps = np.flatnonzero(indices != np.arange(done, done + len(indices)))
        if gaps.size:
            decoder.diagnose(files[done + int(gaps[0])])
        if decoder.same_size:
            other = np.flatnonzero((sizes != np.array(size)).any(axis=1))
            if other.size:
                path, (height, width) = files[done + int(other[0])], sizes[other[0]]
                raise DataError(f"{path}: image is {width}×{height} pixels but {first} is {size[1]}×{size[0]}; "
                                "set data.image_size: [height, width] to resize every image")
        done += len(indices)
    if done < len(files):
        decoder.diagnose(files[done])


__all__ = ["FolderStream", "ImageDecoder", "TextDecoder", "build", "stream_only", "to_mode"]
