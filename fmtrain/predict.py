"""``fmtrain predict``: a finished run's model applied to new examples, written batch by batch.

The input is read by the run's own data source with the encoders the run learned (csv columns
and their categories, label names, id vocabularies), so an example reaches the model exactly as
a training example did; then the model runs one fixed-size batch at a time and each batch's rows
go straight to the output file (csv, jsonl or npz), so predictions are never all held at once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fmtrain.engine.device import configure, set_mixed_precision
from fmtrain.errors import DataError
from fmtrain.predict_input import STREAMED_SUFFIXES, read_inputs, streamed_input
from fmtrain.predict_options import PredictOptions, check_batch_size, check_output
from fmtrain.predict_output import columns, open_writer
from fmtrain.trainers import build_trainer

if TYPE_CHECKING:
    from fmtrain.data import DataInfo

PREVIEW_ROWS = 10


@dataclass(frozen=True)
class Predictions:
    """The predictions of one batch of rows, read from the model's outputs."""

    rows: np.ndarray
    """The 0-based position of each example in the input."""
    class_ids: np.ndarray | None = None
    """Classification: the predicted class of each row."""
    probabilities: np.ndarray | None = None
    """Classification: (rows, classes), one probability per class (a sigmoid output gives [1 - p, p])."""
    values: np.ndarray | None = None
    """Regression: (rows, outputs)."""


@dataclass(frozen=True)
class OutputReading:
    """How the model's raw outputs become :class:`Predictions` (the task, its classes, logits or not)."""

    task: str
    class_names: list[str] | None
    from_logits: bool

    @classmethod
    def of(cls, info: DataInfo, from_logits: bool, output_units: int) -> OutputReading:
        names = info.class_names
        if info.task == "classification" and not names:
            names = [str(i) for i in range(info.num_classes or max(output_units, 2))]
        return cls(info.task, names, from_logits)

    def read(self, rows: np.ndarray, scores: np.ndarray) -> Predictions:
        scores = np.asarray(scores, dtype=np.float32).reshape(len(rows), -1)
        if self.task != "classification":
            return Predictions(rows, values=scores)
        if scores.shape[1] == 1:  # one sigmoid unit: the probability of class 1
            p = 1.0 / (1.0 + np.exp(-scores[:, 0])) if self.from_logits else scores[:, 0]
            probabilities = np.stack([1.0 - p, p], axis=1).astype(np.float32)
            class_ids = (p > 0.5).astype(np.int32)  # eval's cut: a logit above 0, a probability above 0.5
        else:
            probabilities = _softmax(scores) if self.from_logits else scores
            class_ids = np.argmax(scores, axis=1).astype(np.int32)
        return Predictions(rows, class_ids=class_ids, probabilities=probabilities)


@dataclass
class PredictOutcome:
    """What ``fmtrain predict`` did: rows predicted, where they went, a preview and a summary."""

    input: str
    n_rows: int
    batches: int
    reading: OutputReading
    output: Path | None
    files: list[str] | None = None
    """The file of each row, when the input is a folder of loose files."""
    preview: list[Predictions] = field(default_factory=list)
    """The first rows (at most :data:`PREVIEW_ROWS`), for the console."""
    class_counts: list[int] | None = None
    """Classification: how many rows were predicted as each class."""
    value_range: tuple[float, float] | None = None
    """Regression: the smallest and largest predicted value."""

    def preview_table(self, max_classes: int = 5) -> tuple[list[str], list[list[str]]]:
        """The header and cells of the first rows, for the console; the per-class probabilities
        only with at most ``max_classes`` classes."""
        batches = [p for p in self.preview if len(p.rows)]
        width = batches[0].values.shape[1] if batches and batches[0].values is not None else 1
        header = columns(self.reading, width, files=self.files is not None)
        names = self.reading.class_names or []
        keep = len(header) if len(names) <= max_classes else 4 + (self.files is not None)
        cells = []
        for batch in batches:
            for i, row in enumerate(batch.rows.tolist()):
                first = [str(row)] if self.files is None else [str(row), self.files[row]]
                if batch.class_ids is not None:
                    k = int(batch.class_ids[i])
                    probs = [f"{p:.4f}" for p in batch.probabilities[i]]
                    cells.append([*first, names[k], str(k), probs[k], *probs][:keep])
                else:
                    cells.append([*first, *(f"{v:.6g}" for v in batch.values[i])])
        return header[:keep], cells


def predict_run(run_dir: Path, input_path: str | Path, options: PredictOptions) -> PredictOutcome:
    """Predict every example of ``input_path`` with the model of ``run_dir``.

    Args:
        run_dir: a finished run (or a folder of runs: its newest finished one).
        input_path: what the run's data source reads (csv, npz, image or text folder, text file);
            for a run on a bundled or generated set, an .npz with the examples in array ``x``; for a
            run on a streamed source (tfrecord, parquet, csv with ``stream: true``), a file of that
            format, a glob or a folder of them (local, or a URL ``tf.io.gfile`` reads), read a batch
            at a time (rows numbered across the files in name order).
        options: the output file, batch size, device.

    Returns:
        What was predicted; the predictions themselves are in ``options.output``.

    Raises:
        RunDirError: the run is missing, unfinished or its model unreadable.
        DataError: the input is missing a column, or its examples have another shape than the training data's.
        ConfigError: an output file of an unknown kind, or a batch size below 1.
    """
    from fmtrain import data as data_layer
    from fmtrain.config import load_config
    from fmtrain.evaluate import _check_input_shape, load_run_model
    from fmtrain.runs import find_run
    from fmtrain.targets import Targets, output_units

    check_output(options.output)
    check_batch_size(options.batch_size)
    run, note = find_run(run_dir)
    if note:
        _say(note)
    cfg = load_config(run.config)
    info = data_layer.DataInfo.from_dict(run.read_json(run.data_info))
    # Streamed files are read as a stream; a streamed image or text folder's new examples are loose files,
    # read as for an in-memory run.
    if data_layer.streams(cfg.data) and cfg.data.source in STREAMED_SUFFIXES:
        configure(options.device, cfg.seed, options.verbose)  # before tf.data first runs
        set_mixed_precision("off")
        text = str(input_path)
        input_path = text if "://" in text else str(Path(text).expanduser())
        stream = streamed_input(cfg, info, input_path)
        model = load_run_model(run, unsafe=options.unsafe)
        n, files = None, None
        batches = (cfg.model.encode_inputs(raw, model) for raw in stream.feature_batches(options.batch_size))
    else:
        input_path = Path(input_path).expanduser().resolve()
        if not input_path.exists():
            raise DataError(f"{input_path}: not found; give a file (or folder) the run's source "
                            f"'{cfg.data.source}' reads")
        examples = read_inputs(cfg, info, input_path)
        if _count(examples.x) == 0:
            raise DataError(f"{input_path}: no examples to predict")
        configure(options.device, cfg.seed, options.verbose)
        set_mixed_precision("off")  # the saved layers carry their own dtype policies
        model = load_run_model(run, unsafe=options.unsafe)
        x = cfg.model.encode_inputs(examples.x, model)  # e.g. a hub text model's saved tokenizer
        _check_input_shape(_example_shape(x), info.input_shape, str(input_path), cfg.data.source)
        n, files = _count(x), examples.files
        batches = _slices(x, n, options.batch_size)
    targets = Targets.from_config(cfg, info)
    predict_batch = _batch_predictor(build_trainer(cfg, model, targets), options.batch_size)
    reading = OutputReading.of(info, targets.from_logits, output_units(model))

    outcome = PredictOutcome(str(input_path), 0, 0, reading, options.output, files)
    writer = open_writer(options.output, n, reading, files) if options.output is not None else None
    try:
        for inputs in batches:
            rows = np.arange(outcome.n_rows, outcome.n_rows + _count(inputs), dtype=np.int64)
            batch = reading.read(rows, predict_batch(inputs))
            if writer is not None:
                writer.write(batch)
            _summarize(outcome, batch)
            outcome.n_rows += len(rows)
        if outcome.n_rows == 0:
            raise DataError(f"{input_path}: no examples to predict")
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    return outcome


def _slices(x, n: int, batch_size: int) -> Iterator[Any]:
    from fmtrain.data.splits import take

    for start in range(0, n, batch_size):
        yield take(x, slice(start, start + batch_size))


def _count(x) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _example_shape(x):
    if isinstance(x, dict):
        return {name: tuple(values.shape[1:]) for name, values in x.items()}
    return tuple(x.shape[1:])


def _batch_predictor(trainer, batch_size: int):
    """A function from up to ``batch_size`` examples to the model's outputs, compiled once for that
    batch size (the last batch is padded), with eval's jit choice so the numbers match eval's."""
    from fmtrain.engine.feeds import padded
    from fmtrain.engine.steps import make_predict_function

    fn = make_predict_function(trainer.model, trainer.jit_compile)

    def predict(x):
        n = _count(x)
        x_padded, _, _ = padded(x, np.zeros(n, np.float32), batch_size)
        return np.asarray(fn(x_padded))[:n]

    return predict


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def _summarize(outcome: PredictOutcome, batch: Predictions) -> None:
    outcome.batches += 1
    room = PREVIEW_ROWS - sum(len(p.rows) for p in outcome.preview)
    if room > 0:
        outcome.preview.append(_head(batch, room))
    if batch.class_ids is not None:
        counts = np.bincount(batch.class_ids, minlength=len(outcome.reading.class_names or []))
        outcome.class_counts = (counts if outcome.class_counts is None
                                else counts + np.asarray(outcome.class_counts)).tolist()
    elif batch.values is not None and batch.values.size:
        low, high = float(batch.values.min()), float(batch.values.max())
        if outcome.value_range is not None:
            low, high = min(low, outcome.value_range[0]), max(high, outcome.value_range[1])
        outcome.value_range = (low, high)


def _head(batch: Predictions, n: int) -> Predictions:
    def cut(a):
        return None if a is None else a[:n]

    return Predictions(batch.rows[:n], cut(batch.class_ids), cut(batch.probabilities), cut(batch.values))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
