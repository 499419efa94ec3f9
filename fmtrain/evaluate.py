"""``fmtrain eval``: reload a finished run and evaluate it on one split or on a new file."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmtrain import data as data_layer
from fmtrain.engine.device import configure, set_mixed_precision
from fmtrain.errors import ConfigError, DataError, RunDirError, first_line
from fmtrain.expectations import Expectation, check_expectations
from fmtrain.fileio import sha256_of
from fmtrain.report import classification_summary, print_eval, write_report
from fmtrain.runs import SCHEMA_VERSION, RunDir, find_run
from fmtrain.trainers import build_trainer


@dataclass
class EvalOptions:
    split: str = "test"
    data_path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    device: str = "auto"
    unsafe: bool = False
    limit: int | None = None
    """Evaluate only the first N examples of the split (--smoke)."""
    quiet: bool = False
    verbose: bool = False
    console: Any = None
    report: bool = True
    """Rewrite the run's report with this evaluation (off when the caller writes it next anyway)."""


@dataclass
class EvalOutcome:
    result: dict[str, Any]
    path: Path
    expectation_lines: list[str]


def evaluate_run(run_dir: Path, options: EvalOptions) -> EvalOutcome:
    """Evaluate the saved model of ``run_dir`` and write ``eval-<split>.json``
    (``eval-data-<file name>.json`` for ``--data``, with the file's path and SHA-256).

    The data is rebuilt from the run's resolved config with the encoders the run learned,
    so categories and labels map exactly as in training. ``run_dir`` may also be a folder of
    runs (``runs/<name>``): its newest finished run is evaluated, and a note says which.

    Raises:
        RunDirError: the run is missing, unfinished, from a newer fmtrain, or its model unreadable.
        ConfigError: the split does not exist, or an override is invalid.
        ExpectationFailed: an ``--expect`` threshold was missed.
    """
    from fmtrain.config import load_config

    run, note = find_run(run_dir)
    if note:
        _say(note)
    overrides = list(options.overrides)
    split_name, result_path, data_record = options.split, run.eval_result(options.split), None
    if options.data_path is not None:
        data_path = Path(options.data_path).resolve()
        overrides += [f"data.path={data_path}", "data.validation_split=0", "data.test_split=0"]
        split_name, result_path = "data", run.eval_result(f"data-{_file_label(data_path)}")
        data_record = {"path": str(data_path), "sha256": sha256_of(data_path) if data_path.exists() else None}
    cfg = load_config(run.config, overrides)

    configure(options.device, cfg.seed, options.verbose)
    set_mixed_precision("off")  # the saved layers carry their own dtype policies

    from fmtrain.targets import Targets, output_units

    info = data_layer.DataInfo.from_dict(run.read_json(run.data_info))
    model = load_run_model(run, unsafe=options.unsafe)  # a hub text model carries the tokenizer its data needs
    splits = cfg.model.encode_splits(data_layer.build(cfg.data, seed=cfg.seed, encoders=info.encoders), model)
    if data_record is not None:
        _check_input_shape(splits.info.input_shape, info.input_shape, data_record["path"], cfg.data.source)
    split = _pick_split(splits, split_name, run)
    if options.limit is not None:
        split = split.head(options.limit)
    targets = Targets.from_config(cfg, info)
    streamed = hasattr(split, "train_batches")  # a streamed split: read once, in order, the last batch padded
    if streamed:
        split = _shaped_stream(split, targets, output_units(model))
    else:
        y = targets.shape_labels(split.y, output_units(model))
    trainer = build_trainer(cfg, model, targets)
    metrics = trainer.evaluate(split, None) if streamed else trainer.evaluate(split.x, y)
    classification = None
    if info.task == "classification" and not info.label_shape:  # a class per example (not per token)
        if streamed:
            scores, labels = trainer.predict_stream(split.with_labels(_raw_labels()))
        else:
            scores, labels = trainer.predict(split.x), split.y
        cut = 0.0 if targets.from_logits else 0.5  # one unit: a logit is positive above 0, a probability above 0.5
        predicted = (scores[:, 0] > cut).astype(int) if scores.shape[-1] == 1 else np.argmax(scores, axis=-1)
        names = info.class_names or [str(i) for i in range(info.num_classes or int(predicted.max()) + 1)]
        classification = classification_summary(np.asarray(labels).astype(int), predicted, names)
    result = {"split": split_name, "n_samples": len(split), "metrics": metrics, "classification": classification}
    if data_record is not None:
        result["data"] = data_record
    path = result_path
    run.write_json(path, result)
    result = {"schema_version": SCHEMA_VERSION, **result}  # what the file holds
    if not options.quiet:
        from rich.console import Console

        print_eval(options.console or Console(), result)

    if options.report:
        write_report(run.path)
    lines = check_expectations(options.expectations, {split_name: metrics}, split_name) if options.expectations else []
    return EvalOutcome(result, path, lines)


def _shaped_stream(stream, targets, units: int):
    """The stream with its labels shaped as :meth:`Targets.shape_labels` shapes arrays."""
    from fmtrain.data.tfrecord import LabelShape

    sample = stream.arrays(1)[1]
    return stream.with_labels(LabelShape.like(targets.shape_labels(sample, units), sample, targets.one_hot))


def _raw_labels():
    """Class ids as stored (for the per-class summary)."""
    from fmtrain.data.tfrecord import LabelShape

    return LabelShape()


def _say(note: str) -> None:
    print(note, file=sys.stderr, flush=True)


def _file_label(path: Path) -> str:
    """A file-name-safe label for an ``--data`` path: its stem, other characters as '_'."""
    stem = path.stem if path.is_file() or path.suffix else path.name
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in stem) or "data"


def _check_input_shape(found, expected, path: str, source: str) -> None:
    """Refuse data whose examples are not the shape the model was trained on (before it meets the model)."""
    def as_shapes(shape):
        return {k: tuple(v) for k, v in shape.items()} if isinstance(shape, dict) else tuple(shape)

    found, expected = as_shapes(found), as_shapes(expected)
    if found == expected:
        return
    hint = ""
    if source == "image_folder" and isinstance(expected, tuple) and len(expected) == 3:
        hint = (f"; resize them with --set data.image_size=[{expected[0]},{expected[1]}]"
                if found[-1:] == expected[-1:] else f"; set data.color_mode to give {expected[-1]} channels")
    raise DataError(f"{path}: examples have shape {_shape(found)} but the run's model was trained on "
                    f"{_shape(expected)}{hint}")


def _shape(shape) -> str:
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_shape(v)}" for k, v in shape.items()) + "}"
    return "×".join(map(str, shape)) if shape else "scalar"


def _pick_split(splits, name: str, run: RunDir):
    if name == "data":
        return splits.test if splits.test is not None else splits.train
    split = getattr(splits, name, None)
    if split is None:
        available = [n for n in ("train", "val", "test") if getattr(splits, n) is not None]
        raise ConfigError(f"--split {name}: the run {run.path} has no {name} split; available: {', '.join(available)}")
    return split


def load_run_model(run: RunDir, unsafe: bool = False):
    """Load ``model.keras`` in Keras safe mode (no Lambda code) unless ``unsafe``.

    Raises:
        RunDirError: the file is missing, truncated or refuses safe loading.
    """
    import keras

    from fmtrain.models import ensure_custom_layers

    ensure_custom_layers()
    try:
        return keras.saving.load_model(run.model, compile=False, safe_mode=not unsafe)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise RunDirError(
                f"{run.model}: the model contains code (a Lambda layer) that safe loading refuses; "
                "pass --unsafe only if you trust who made this run"
            ) from None
        raise RunDirError(f"{run.model}: cannot load the model: {first_line(exc)}") from None
    except (OSError, KeyError, EOFError, Exception) as exc:  # zip/h5 errors vary by corruption
        raise RunDirError(f"{run.model}: cannot load the model (corrupt or truncated?): {first_line(exc)}") from None
