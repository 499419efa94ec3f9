"""``fmtrain fit``: config → data → preprocessing → model → training → run directory."""

from __future__ import annotations

import hashlib
import json
import platform
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmtrain.errors import ConfigError, Interrupted, RunDirError, TrainingFailed
from fmtrain.expectations import Expectation, check_expectations
from fmtrain.runs import RunDir, check_run_path, create_run_dir, default_run_path

# --smoke trains on this many training and evaluation examples, for at most this many epochs.
SMOKE_TRAIN_EXAMPLES = 256
SMOKE_EVAL_EXAMPLES = 128
SMOKE_EPOCHS = 2


@dataclass
class FitOptions:
    """Command-line choices that are not part of the config."""

    run_dir: Path | None = None
    runs_root: Path = Path("runs")
    overwrite: bool = False
    smoke: bool = False
    resume: Path | None = None
    expectations: list[Expectation] = field(default_factory=list)
    device: str = "auto"
    quiet: bool = False
    verbose: bool = False
    console: Any = None


@dataclass
class FitOutcome:
    run: RunDir
    metrics: dict[str, Any]
    expectation_lines: list[str]


def config_hash(cfg) -> str:
    """A short, stable hash of the resolved config."""
    return hashlib.sha256(json.dumps(cfg.to_yaml_dict(), sort_keys=True).encode()).hexdigest()[:16]


def config_differences(old, new) -> list[str]:
    """Dotted keys whose resolved values differ between two configs."""
    def flatten(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    a, b = flatten(old.to_yaml_dict()), flatten(new.to_yaml_dict())
    return sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))


def fit(cfg, options: FitOptions) -> FitOutcome:
    """Train ``cfg`` and write its run directory (or continue ``options.resume``).

    Raises:
        ConfigError, DataError, RunDirError: bad config, data or run directory (exit 2).
        TrainingFailed: training diverged or the saved model does not reload identically (exit 1).
        Interrupted: SIGINT/SIGTERM; a checkpoint and a partial report are written (exit 130).
        ExpectationFailed: an ``--expect`` threshold was missed (exit 3); the run is still written.
    """
    started = time.perf_counter()
    resume_from = None
    if options.resume is not None:
        from fmtrain.engine.checkpoints import CheckpointManager

        path = Path(options.resume)
        resume_from = CheckpointManager(RunDir(path).path / "checkpoints").latest()
        if resume_from is None:
            raise RunDirError(f"--resume {path}: no checkpoint to resume from in {path / 'checkpoints'}")
    else:
        path = options.run_dir or default_run_path(options.runs_root, cfg.name)
        check_run_path(path, options.overwrite)

    from fmtrain.engine.device import configure, set_mixed_precision

    devices = configure(options.device, cfg.seed, options.verbose, deterministic=cfg.train.deterministic)
    precision = set_mixed_precision(cfg.train.mixed_precision)

    from fmtrain import data as data_layer
    from fmtrain.engine.callbacks import CheckpointCallback, EarlyStopping, ProgressCallback
    from fmtrain.engine.checkpoints import CheckpointManager
    from fmtrain.engine.trainer import Trainer
    from fmtrain.losses import build_loss
    from fmtrain.metrics import build_metrics
    from fmtrain.models import build_model, input_dtypes
    from fmtrain.optim import build_optimizer
    from fmtrain.preprocess import fit_feature_layers
    from fmtrain.targets import Targets, output_units

    encoders = None
    if resume_from is not None:
        encoders = data_layer.DataInfo.from_dict(RunDir(path).read_json(RunDir(path).data_info)).encoders
    splits = data_layer.build(cfg.data, seed=cfg.seed, encoders=encoders)
    if options.smoke:
        splits = splits.subset(train=SMOKE_TRAIN_EXAMPLES, evaluate=SMOKE_EVAL_EXAMPLES)
    info = splits.info
    targets = Targets.from_config(cfg, info)
    model = build_model(
        cfg.model, input_shape=info.input_shape, output=targets.output, name=cfg.name,
        input_dtypes=input_dtypes(splits.train.x), vocab_sizes=info.vocab_sizes,
        preprocessing=fit_feature_layers(cfg.preprocess, splits.train.x, info),
    )
    units = output_units(model)
    labels = {name: targets.shape_labels(split.y, units) for name, split in _present(splits).items()}
    epochs = min(cfg.train.epochs, SMOKE_EPOCHS) if options.smoke else cfg.train.epochs
    steps_per_epoch = -(-len(splits.train) // cfg.data.batch_size)
    transfer = _start_transfer(cfg, model)
    unfreeze_at = cfg.train.unfreeze_after_epochs
    fine_tuning_already = bool(unfreeze_at and resume_from and resume_from[1].epoch >= unfreeze_at)
    two_phases = bool(unfreeze_at and not fine_tuning_already and unfreeze_at < epochs)
    if fine_tuning_already:
        from fmtrain.transfer import unfreeze_all

        unfreeze_all(model)  # the checkpoint comes from the fine-tuning phase

    def make_trainer(learning_rate=None):
        optimizer_cfg = cfg.optimizer if learning_rate is None else cfg.optimizer.model_copy(
            update={"learning_rate": learning_rate})
        optimizer = build_optimizer(optimizer_cfg, steps_per_epoch * epochs)
        if precision == "mixed_float16":
            import keras

            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return Trainer(
            model, optimizer, build_loss(targets.loss_name, targets.loss_args),
            build_metrics(cfg.metrics, targets.metric_context(units), getattr(cfg.model, "default_metrics", None)),
            jit_compile=cfg.train.jit_compile, steps_per_execution=cfg.train.steps_per_execution,
            deterministic=cfg.train.deterministic, strict_compile=cfg.train.strict_compile,
        )

    trainer = make_trainer(_fine_tune_rate(cfg) if fine_tuning_already else None)
    if resume_from is None:
        run = create_run_dir(path, options.overwrite)
        run.write_config(cfg.to_yaml_dict())
        run.write_json(run.data_info, info.to_dict())
    else:
        run = RunDir(path)
        run.write_config(cfg.to_yaml_dict())  # what the continued run uses (--allow-config-change)
    run.write_json(run.environment, _environment(devices))

    checkpointing = cfg.train.checkpoint
    monitor = checkpointing.monitor
    if monitor == "auto":
        monitor = "val_loss" if splits.val is not None else "loss"
    callbacks = [] if options.quiet else [ProgressCallback(options.console)]
    if cfg.train.early_stopping:
        callbacks.append(EarlyStopping(**cfg.train.early_stopping.model_dump()))
    callbacks.append(CheckpointCallback(
        CheckpointManager(run.path / "checkpoints", checkpointing.keep_last, checkpointing.keep_best),
        every_epochs=checkpointing.every_epochs, every_steps=checkpointing.every_steps, monitor=monitor,
        mode=checkpointing.mode, config_hash=config_hash(cfg),
    ))
    fit_kwargs = dict(
        batch_size=cfg.data.batch_size, seed=cfg.seed, shuffle=cfg.data.shuffle, callbacks=callbacks,
        feed="dataset" if cfg.train.feed == "dataset" else "graph", cache=cfg.data.cache,
        prefetch=cfg.data.prefetch, every_steps=checkpointing.every_steps,
        validation=(splits.val.x, labels["val"]) if splits.val is not None else None,
    )
    try:
        with _stop_on_signals(trainer):
            result = trainer.fit(splits.train.x, labels["train"], epochs=unfreeze_at if two_phases else epochs,
                                 resume=resume_from[1:] if resume_from else None, **fit_kwargs)
        if two_phases:
            from fmtrain.transfer import unfreeze_all

            unfreeze_all(model)
            first_phase = trainer
            trainer = make_trainer(_fine_tune_rate(cfg))
            with _stop_on_signals(trainer):
                result = trainer.fit(splits.train.x, labels["train"], epochs=epochs, initial_epoch=unfreeze_at,
                                     history=first_phase.history, global_step=first_phase.global_step,
                                     **fit_kwargs)
            transfer["unfrozen_after_epochs"] = unfreeze_at
    except Interrupted as exc:
        run.write_history(trainer.history)
        _write_partial_report(run)
        raise Interrupted(f"{exc}; checkpoint saved in {run.path / 'checkpoints'}; "
                          f"continue with: fmtrain fit --resume {run.path}") from None
    final = {name: trainer.evaluate(split.x, labels[name]) for name, split in _present(splits).items()}
    _save_model(model, run)
    run.write_history(result.history)
    metrics = _metrics_payload(cfg, info, splits, result, final, trainer, model, started)
    metrics["resumed_from_step"] = resume_from[1].global_step if resume_from else None
    metrics["precision"] = precision
    if transfer:
        from fmtrain.transfer import trainable_report

        metrics["transfer"] = {**transfer, **trainable_report(model)}
    run.write_json(run.metrics, metrics)

    if options.smoke:
        _check_reload(model, run, splits)
        from fmtrain.evaluate import EvalOptions, evaluate_run

        evaluate_run(run.path, EvalOptions(split=_default_split(final), quiet=True, device=options.device,
                                           limit=SMOKE_EVAL_EXAMPLES))
    from fmtrain.report import write_report

    write_report(run.path)
    lines = check_expectations(options.expectations, final, _default_split(final)) if options.expectations else []
    return FitOutcome(run, metrics, lines)


def _start_transfer(cfg, model) -> dict[str, Any]:
    """Apply model.init_from and model.freeze; return what was done, for metrics.json."""
    from fmtrain.transfer import freeze_layers, load_source_model, transfer_weights

    done: dict[str, Any] = {}
    if cfg.model.init_from:
        done["init_from"] = cfg.model.init_from
        done["transferred"] = transfer_weights(model, load_source_model(cfg.model.init_from))
    if cfg.model.freeze:
        done["frozen_at_start"] = freeze_layers(model, cfg.model.freeze)
    return done


def _fine_tune_rate(cfg) -> float:
    if cfg.train.fine_tune_learning_rate:
        return cfg.train.fine_tune_learning_rate
    rate = cfg.optimizer.learning_rate
    return (rate if isinstance(rate, float) else rate.initial if hasattr(rate, "initial") else rate.values[0]) / 10


def resume_config(run_dir: Path, new_cfg, allow_change: bool):
    """The config a resumed run continues with: the run's own, unless a changed one is allowed.

    Raises:
        RunDirError: the run directory has no config.
        ConfigError: ``new_cfg`` differs from the run's config and ``allow_change`` is False.
    """
    from fmtrain.config import load_config

    run = RunDir(run_dir)
    if not run.config.exists():
        raise RunDirError(f"--resume {run_dir}: no config.yaml; is this an fmtrain run directory?")
    saved = load_config(run.config)
    if new_cfg is None:
        return saved
    changed = config_differences(saved, new_cfg)
    if changed and not allow_change:
        raise ConfigError(
            f"--resume {run_dir}: the config differs from the run's in {', '.join(changed)}; "
            "resume with the run's own config (leave out CONFIG and --set) or pass --allow-config-change"
        )
    return new_cfg


@contextmanager
def _stop_on_signals(trainer):
    """SIGINT/SIGTERM ask the trainer to stop after the current call; a second SIGINT stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.stop_reason and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.request_stop(f"stopped by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _write_partial_report(run: RunDir) -> None:
    """After an interrupt: metrics.json marks the run as unfinished, and the report shows its history."""
    if not run.metrics.exists():
        run.write_json(run.metrics, {"name": run.path.name, "interrupted": True, "final": {}})
    try:
        from fmtrain.report import write_report

        write_report(run.path)
    except RunDirError:
        pass  # a report is a courtesy here; the checkpoint is what matters


def _present(splits) -> dict[str, Any]:
    return {name: getattr(splits, name) for name in ("train", "val", "test") if getattr(splits, name) is not None}


def _default_split(final: dict[str, Any]) -> str:
    return next(name for name in ("test", "val", "train") if final.get(name))


def _save_model(model, run: RunDir) -> None:
    import os

    temporary = run.path / ".model.partial.keras"
    model.save(temporary)
    os.replace(temporary, run.model)


def _check_reload(model, run: RunDir, splits) -> None:
    """--smoke: the saved model must reload (safe mode) and predict exactly what the trained one does."""
    import keras
    import tensorflow as tf

    from fmtrain.models import ensure_custom_layers

    ensure_custom_layers()
    sample = splits.test or splits.val or splits.train
    batch = tf.nest.map_structure(lambda a: a[:SMOKE_EVAL_EXAMPLES], sample.x)  # one batch: in-batch models too
    reloaded = keras.saving.load_model(run.model, compile=False, safe_mode=True)
    before = np.asarray(model(batch, training=False))
    after = np.asarray(reloaded(batch, training=False))
    if not np.allclose(before, after, rtol=1e-5, atol=1e-6):
        raise TrainingFailed(
            f"{run.model}: the reloaded model predicts differently from the trained one "
            f"(max difference {np.max(np.abs(before - after)):.3g}); a layer may not save its state"
        )


def _metrics_payload(cfg, info, splits, result, final, trainer, model, started) -> dict[str, Any]:
    import keras

    history = result.history
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    total = int(sum(np.prod(v.shape) for v in model.variables))
    first_epoch = history[0]["seconds"] if history else None
    return {
        "name": cfg.name,
        "task": info.task,
        "final": {name: final.get(name) for name in ("train", "val", "test")},
        "epochs_run": len(history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "resumed_from_step": None,
        "timing": {
            "fit_seconds": round(result.fit_seconds, 4),
            "first_epoch_seconds": round(first_epoch, 4) if first_epoch is not None else None,
            "total_seconds": round(time.perf_counter() - started, 4),
        },
        "throughput": {"train_samples_per_second": round(result.samples_seen / max(result.fit_seconds, 1e-9), 1)},
        "compile": {
            "jit_compile": result.jit_compile,
            "steps_per_execution": result.steps_per_execution,
            "traces": trainer.trace_counts(),
            "notes": result.notes,
        },
        "deterministic": cfg.train.deterministic,
        "loss_fingerprint": result.loss_fingerprint,
        "data": {name: len(split) for name, split in _present(splits).items()},
        "params": {"trainable": trainable, "total": total},
        "keras_version": keras.__version__,
    }


def _environment(devices: list[str]) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from fmtrain import __version__

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "fmtrain": __version__,
        "devices": devices,
        "platform": platform.platform(),
        "argv": sys.argv,
    }
