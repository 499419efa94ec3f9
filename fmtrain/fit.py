"""``fmtrain fit``: config → data → preprocessing → model → training → run directory."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fmtrain import __version__
from fmtrain import data as data_layer
from fmtrain.config import locate
from fmtrain.engine.callbacks import CheckpointCallback, EarlyStopping, ProgressCallback
from fmtrain.engine.device import Distribution, configure, set_mixed_precision, worker_role
from fmtrain.engine.device import distribution as distribution_of
from fmtrain.engine.mode_gap import BATCH_DEPENDENT_LOSSES, mode_gap_warning
from fmtrain.engine.signals import stop_on_signals
from fmtrain.errors import ConfigError, DataError, Interrupted, RunDirError, TrainingFailed
from fmtrain.expectations import Expectation, check_expectation_names, check_expectations
from fmtrain.optim import build_optimizer
from fmtrain.report import write_fit_details, write_report
from fmtrain.runs import (
    CompileInfo,
    DistributeInfo,
    Interruption,
    PlanInfo,
    PreciseBNInfo,
    ResumeInfo,
    RunDir,
    RunMetrics,
    Throughput,
    Timing,
    check_run_path,
    create_run_dir,
    default_run_path,
)
from fmtrain.trainers import build_trainer
from fmtrain.transfer import fine_tune_rate, start_transfer, trainable_report, unfreeze_all

if TYPE_CHECKING:
    from fmtrain.config.schema import Config
    from fmtrain.data.encoding import EncoderState
    from fmtrain.engine.checkpoints import Checkpoint

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
    callbacks: list = field(default_factory=list)
    """More engine callbacks (``fmtrain.engine.callbacks.Callback``), called after fmtrain's own."""


@dataclass
class FitOutcome:
    run: RunDir
    metrics: RunMetrics
    expectation_lines: list[str]


@dataclass
class _Prepared:
    """Everything built from the config and the data before training starts."""

    splits: Any
    targets: Any
    model: Any
    labels: dict[str, Any]
    epochs: int
    steps_per_epoch: int
    precision: str

    @property
    def validation(self):
        val = self.splits.val
        return (_inputs(val), self.labels["val"]) if val is not None else None


def fit(cfg: Config, options: FitOptions) -> FitOutcome:
    """Train ``cfg`` and write its run directory (or continue ``options.resume``).

    Under ``distribute.strategy: multi_worker`` every worker trains, but only the chief writes the run
    directory: the others write theirs (checkpoints included) to a temporary folder, removed at the end.

    Raises: as :func:`train_and_write`.
    """
    if cfg.distribute.strategy != "multi_worker":
        return train_and_write(cfg, options)
    role = worker_role()
    if not options.quiet:
        print(f"multi_worker: this is {role.describe()}", file=sys.stderr, flush=True)
    if role.chief:
        return train_and_write(cfg, options)
    scratch = Path(tempfile.mkdtemp(prefix=f"fmtrain-{role.task_type}{role.index}-"))
    try:
        if options.resume is not None:  # continue from a copy of the chief's run
            shutil.copytree(options.resume, scratch / "run")
            options = replace(options, resume=scratch / "run")
        else:
            options = replace(options, run_dir=scratch / "run", overwrite=False)
        return train_and_write(cfg, options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def train_and_write(cfg: Config, options: FitOptions) -> FitOutcome:
    """Train ``cfg`` and write its run directory (or continue ``options.resume``), on this process.

    Raises:
        ConfigError, DataError, RunDirError: bad config, data or run directory (exit 2).
        TrainingFailed: training diverged or the saved model does not reload identically (exit 1).
        Interrupted: SIGINT/SIGTERM; a checkpoint and a partial report are written (exit 130).
        ExpectationFailed: an ``--expect`` threshold was missed (exit 3); the run is still written.
    """
    from fmtrain.resume import latest_checkpoint

    started = time.perf_counter()
    resume_from = latest_checkpoint(options.resume) if options.resume is not None else None
    path = Path(options.resume) if resume_from else options.run_dir or default_run_path(options.runs_root, cfg.name)
    if not resume_from:
        check_run_path(path, options.overwrite)

    devices = configure(options.device, cfg.seed, options.verbose, deterministic=cfg.train.deterministic,
                        cpu_devices=cfg.distribute.cpu_devices)
    distribution = distribution_of(cfg.distribute.strategy)
    try:
        distribution.check_batch(cfg.data.batch_size)
    except ConfigError as exc:
        raise ConfigError(locate(cfg, str(exc))) from None
    with distribution.scope():  # model, optimizer and metrics are created on every replica
        precision = set_mixed_precision(cfg.train.mixed_precision)
        encoders = _saved_encoders(RunDir(path)) if resume_from else None
        try:  # a config problem found while building names the file and line of its key
            prepared = _prepare(cfg, options, encoders, precision)
            if resume_from is not None and prepared.splits.info.streamed is not None:
                check_same_shards(RunDir(path), prepared.splits.info)
            transfer = start_transfer(cfg, prepared.model)
            trainer = _first_trainer(cfg, prepared, resume_from)  # optimizer, loss, metrics: checked before any write
        except (ConfigError, DataError) as exc:
            raise type(exc)(locate(cfg, str(exc))) from None

        check_expectation_names(options.expectations, metric_names=trainer.metric_names,
                                splits=list(_present(prepared.splits)))
        if resume_from is not None and not options.quiet:
            state = resume_from.state
            print(f"resuming {path} from {resume_from.path.name}: epoch {state.epoch + 1}, step {state.step} "
                  f"(global step {state.global_step})", file=sys.stderr, flush=True)
        run = _open_run(cfg, path, options, prepared, resume_from, devices)
        try:
            trainer, result = _train(cfg, options, prepared, run, resume_from, transfer, trainer)
        except BaseException:
            if resume_from is None:
                _remove_if_nothing_trained(run)
            raise

        precise_bn = _recompute_bn_statistics(cfg, prepared)  # what the final numbers and the saved model use
        trainer.release_device_copies()  # training is over: the final evaluation copies one split at a time
        final = {name: trainer.evaluate(_inputs(split), prepared.labels[name])
                 for name, split in _present(prepared.splits).items()}
        _save_model(prepared.model, run)
        run.write_history(result.history)
        # model_summary.json always; data_stats.json (class counts, overlaps) needs the arrays (a stream has none)
        write_fit_details(run.path, None if data_layer.streams(cfg.data) else prepared.splits, prepared.model)
        metrics = _metrics_payload(cfg, prepared, result, final, trainer, started, precise_bn, distribution)
        if transfer:
            metrics = metrics.model_copy(update={"transfer": {**transfer, **trainable_report(prepared.model)}})
        run.write_json(run.metrics, metrics.to_dict())
    if options.quiet:  # the summary that would say it is not printed
        for warning in metrics.warnings:
            print(f"warning: {warning}", file=sys.stderr, flush=True)

    if options.smoke:
        _check_reload(prepared.model, run, prepared.splits)
        from fmtrain.evaluate import EvalOptions, evaluate_run

        evaluate_run(run.path, EvalOptions(split=_default_split(final), quiet=True, device=options.device,
                                           limit=SMOKE_EVAL_EXAMPLES, report=False))  # written just below

    write_report(run.path)
    lines = check_expectations(options.expectations, final, _default_split(final)) if options.expectations else []
    return FitOutcome(run, metrics, lines)


def check_same_shards(run: RunDir, info) -> None:
    """A resumed streamed run reads the shards and example counts it started with (its epochs, and
    so the batches a resume skips, depend on them).

    Raises:
        DataError: the shards or their counts changed since the run started.
    """
    saved = run.read_json(run.data_info).get("streamed") or {}
    now = info.streamed
    for key in ("files", "counts"):
        if saved.get(key) is not None and saved[key] != now[key]:
            split = next((s for s in now[key] if saved[key].get(s) != now[key][s]), next(iter(now[key])))
            raise DataError(
                f"{run.data_info}: data.files.{split} now gives {_shards(now, split)} but the run started with "
                f"{_shards(saved, split)}; a resumed run must read the same shards (restore them, or start a new run)"
            )


def _shards(streamed: dict, split: str) -> str:
    files, count = streamed["files"].get(split) or [], streamed["counts"].get(split)
    return f"{len(files)} shard(s) of {count} examples"


def _saved_encoders(run: RunDir) -> EncoderState:
    from fmtrain.data import DataInfo

    return DataInfo.from_dict(run.read_json(run.data_info)).encoders


def _prepare(cfg: Config, options: FitOptions, encoders, precision: str) -> _Prepared:
    """Data, targets and the model (preprocessing fitted on the training split)."""
    from fmtrain.models import build_model, input_dtypes
    from fmtrain.preprocess import fit_feature_layers
    from fmtrain.targets import Targets, output_units

    # hub text classifiers tokenize here, once (HubParams.encode_splits); other types read the data as it is
    splits = cfg.model.encode_splits(data_layer.build(cfg.data, seed=cfg.seed, encoders=encoders))
    if options.smoke:
        splits = splits.subset(train=SMOKE_TRAIN_EXAMPLES, evaluate=SMOKE_EVAL_EXAMPLES)
    info = splits.info
    streamed = data_layer.streams(cfg.data)
    # A streamed source's adapting steps see its first adapt_samples training examples, never val/test;
    # without preprocessing a few examples tell the model its input dtypes.
    if streamed:
        x_train, y_train = splits.train.arrays(splits.adapt_samples if cfg.preprocess else cfg.data.batch_size)
    else:
        x_train, y_train = splits.train.x, None
    targets = Targets.from_config(cfg, info)
    model = build_model(
        cfg.model, input_shape=info.input_shape, output=targets.output, name=cfg.name,
        input_dtypes=input_dtypes(x_train), vocab_sizes=info.vocab_sizes,
        preprocessing=fit_feature_layers(cfg.preprocess, x_train, info),
    )
    units = output_units(model)
    if streamed:  # the labels are shaped inside the stream, as shape_labels shapes arrays
        splits = _shape_stream_labels(splits, targets, units, y_train)
    return _Prepared(
        splits=splits, targets=targets, model=model,
        labels={name: None if streamed else targets.shape_labels(split.y, units)
                for name, split in _present(splits).items()},
        epochs=min(cfg.train.epochs, SMOKE_EPOCHS) if options.smoke else cfg.train.epochs,
        steps_per_epoch=-(-len(splits.train) // cfg.data.batch_size), precision=precision,
    )


def _inputs(split):
    """What the trainer takes as x: a split's arrays, or a streamed split itself."""
    return split if hasattr(split, "train_batches") else split.x


def _shape_stream_labels(splits, targets, units: int, y_sample):
    """Streams whose labels reach the loss as :meth:`Targets.shape_labels` shapes arrays (which also
    checks the ids the shards hold, scanned while counting, against the output layer)."""
    import numpy as np

    from fmtrain.data.tfrecord import LabelShape

    if splits.info.num_classes:
        targets.shape_labels(np.arange(splits.info.num_classes), units)  # every class id the data may hold
    shaped = targets.shape_labels(y_sample, units)
    return splits.with_labels(LabelShape.like(shaped, np.asarray(y_sample), targets.one_hot))


def _open_run(cfg: Config, path: Path, options: FitOptions, prepared: _Prepared, resume_from: Checkpoint | None,
              devices: list[str]) -> RunDir:
    """Create the run directory (or reopen a resumed one) and write what is known before training."""
    if resume_from is None:
        run = create_run_dir(path, options.overwrite)
        run.write_json(run.data_info, prepared.splits.info.to_dict())
    else:
        run = RunDir(path)
    run.write_config(cfg.to_yaml_dict())  # a resumed run records what it continues with (--allow-config-change)
    run.write_json(run.environment, _environment(devices))
    return run


def _make_trainer(cfg: Config, prepared: _Prepared, learning_rate: float | None = None):

    optimizer_cfg = cfg.optimizer
    if learning_rate is not None:
        optimizer_cfg = cfg.optimizer.model_copy(update={"learning_rate": learning_rate})
    optimizer = build_optimizer(optimizer_cfg, prepared.steps_per_epoch * prepared.epochs)
    if prepared.precision == "mixed_float16":
        import keras

        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return build_trainer(cfg, prepared.model, prepared.targets, optimizer)


def _callbacks(cfg: Config, options: FitOptions, run: RunDir, has_validation: bool) -> list:
    from fmtrain.engine.checkpoints import CheckpointManager
    from fmtrain.integrations import TensorBoardCallback
    from fmtrain.resume import config_hash

    checkpointing = cfg.train.checkpoint
    monitor = checkpointing.monitor
    if monitor == "auto":
        monitor = "val_loss" if has_validation else "loss"
    callbacks = [] if options.quiet else [ProgressCallback(options.console)]
    if cfg.train.early_stopping:
        callbacks.append(EarlyStopping(**cfg.train.early_stopping.model_dump()))
    callbacks.append(CheckpointCallback(
        CheckpointManager(run.path / "checkpoints", checkpointing.keep_last, checkpointing.keep_best),
        every_epochs=checkpointing.every_epochs, every_steps=checkpointing.every_steps, monitor=monitor,
        mode=checkpointing.mode, config_hash=config_hash(cfg),
    ))
    callbacks.append(TensorBoardCallback(run.path / "tensorboard", cfg.train.profile))
    return [*callbacks, *options.callbacks]


def _first_trainer(cfg: Config, prepared: _Prepared, resume_from: Checkpoint | None):
    """The trainer training starts (or resumes) with; a checkpoint from the fine-tuning phase
    resumes with every layer trainable and the fine-tuning learning rate."""

    unfreeze_at = cfg.train.unfreeze_after_epochs
    if unfreeze_at and resume_from and resume_from.state.epoch >= unfreeze_at:
        unfreeze_all(prepared.model)
        return _make_trainer(cfg, prepared, fine_tune_rate(cfg))
    return _make_trainer(cfg, prepared)


def _train(cfg: Config, options: FitOptions, prepared: _Prepared, run: RunDir, resume_from: Checkpoint | None,
           transfer: dict, trainer):
    """Run the training phases: one, or frozen then fine-tuned (train.unfreeze_after_epochs).

    Returns the trainer of the last phase and its FitResult.
    """

    unfreeze_at, epochs = cfg.train.unfreeze_after_epochs, prepared.epochs
    resumed_epoch = resume_from.state.epoch if resume_from else 0
    two_phases = bool(unfreeze_at and resumed_epoch < unfreeze_at < epochs)
    common = dict(
        batch_size=cfg.data.batch_size, seed=cfg.seed, shuffle=cfg.data.shuffle,
        callbacks=_callbacks(cfg, options, run, prepared.splits.val is not None),
        feed="dataset" if cfg.train.feed == "dataset" else "graph", cache=cfg.data.cache,
        prefetch=cfg.data.prefetch, every_steps=cfg.train.checkpoint.every_steps, validation=prepared.validation,
    )
    x, y = _inputs(prepared.splits.train), prepared.labels["train"]
    try:
        with stop_on_signals(trainer):
            result = trainer.fit(x, y, epochs=unfreeze_at if two_phases else epochs, resume=resume_from, **common)
        if two_phases:
            unfreeze_all(prepared.model)
            frozen_phase, trainer = trainer, _make_trainer(cfg, prepared, fine_tune_rate(cfg))
            with stop_on_signals(trainer):
                fine_tuned = trainer.fit(x, y, epochs=epochs, initial_epoch=unfreeze_at, history=frozen_phase.history,
                                         global_step=frozen_phase.global_step, **common)
            result = _both_phases(result, fine_tuned)
            transfer["unfrozen_after_epochs"] = unfreeze_at
    except Interrupted as exc:
        run.write_history(trainer.history)
        _write_partial_report(run, cfg, prepared, trainer)
        raise Interrupted(f"{exc}; checkpoint saved in {run.path / 'checkpoints'}; "
                          f"continue with: fmtrain fit --resume {run.path}") from None
    except KeyboardInterrupt:
        # A second Ctrl-C while the first stop was being handled: stop now and write nothing more.
        if not any((run.path / "checkpoints").glob("step-*.npz")):
            raise Interrupted("stopped at once by SIGINT, before any checkpoint was saved") from None
        raise Interrupted(f"stopped at once by SIGINT, without a checkpoint of this step; continue from the last one "
                          f"in {run.path / 'checkpoints'} with: fmtrain fit --resume {run.path}") from None
    return trainer, result


def _recompute_bn_statistics(cfg: Config, prepared: _Prepared):
    """Precise batch norm after the last epoch (not in checkpoints, so resume stays exact); None without
    BatchNormalization layers that train."""
    from fmtrain.engine import precise_bn

    x = prepared.splits.train
    if hasattr(x, "train_batches"):  # streamed: its first examples, only when there is a layer to recompute
        if not precise_bn.trainable_batch_norms(prepared.model) or cfg.train.precise_bn_samples <= 0:
            return None
        x = x.arrays(cfg.train.precise_bn_samples)[0]
    else:
        x = x.x
    return precise_bn.recompute_bn_statistics(prepared.model, x, batch_size=cfg.data.batch_size,
                                              seed=cfg.seed, samples=cfg.train.precise_bn_samples)


def _warnings(cfg: Config, prepared: _Prepared, result, final, precise_bn) -> list[str]:
    history = result.history
    if not history or not final.get("train") or prepared.targets.loss_name in BATCH_DEPENDENT_LOSSES:
        return []
    # The saved weights are those of the best epoch when early stopping restored them.
    stopping = cfg.train.early_stopping
    kept = result.best_epoch if stopping and stopping.restore_best_weights and result.best_epoch else len(history)
    warning = mode_gap_warning(history[kept - 1], kept, final["train"], examples=len(prepared.splits.train),
                               batch_size=cfg.data.batch_size, precise_bn=precise_bn is not None)
    return [warning] if warning else []


def _both_phases(frozen, fine_tuned):
    """One FitResult for a run trained frozen, then fine-tuned: where it started and all it trained."""

    return replace(fine_tuned, started_at_step=frozen.started_at_step, resumed_from=frozen.resumed_from,
                   steps_trained=frozen.steps_trained + fine_tuned.steps_trained,
                   samples_seen=frozen.samples_seen + fine_tuned.samples_seen,
                   fit_seconds=frozen.fit_seconds + fine_tuned.fit_seconds)


def _remove_if_nothing_trained(run: RunDir) -> None:
    """A new run that failed before its first checkpoint holds nothing worth keeping, and would
    make the next try need --overwrite: remove it."""

    if not any((run.path / "checkpoints").glob("step-*.npz")):
        shutil.rmtree(run.path, ignore_errors=True)


def _write_partial_report(run: RunDir, cfg: Config, prepared: _Prepared, trainer) -> None:
    """After an interrupt: metrics.json marks the run as unfinished (where it stopped), and the
    report shows its history with the command that continues it."""
    epoch, step = trainer.position
    if not run.metrics.exists() or run.read_metrics().interrupted:  # never replace a finished run's metrics
        where = Interruption(epoch=epoch + 1 if step else epoch, step=step, global_step=trainer.global_step)
        info = prepared.splits.info
        run.write_json(run.metrics, RunMetrics(name=cfg.name, task=info.task, task_reason=info.task_reason,
                                               interrupted=where).to_dict())
    try:
        write_report(run.path)
    except RunDirError:
        pass  # a report is a courtesy here; the checkpoint is what matters


def _present(splits) -> dict[str, Any]:
    return {name: getattr(splits, name) for name in ("train", "val", "test") if getattr(splits, name) is not None}


def _default_split(final: dict[str, Any]) -> str:
    return next(name for name in ("test", "val", "train") if final.get(name))


def _save_model(model, run: RunDir) -> None:

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
    x = sample.arrays(SMOKE_EVAL_EXAMPLES)[0] if hasattr(sample, "train_batches") else sample.x
    batch = tf.nest.map_structure(lambda a: a[:SMOKE_EVAL_EXAMPLES], x)  # one batch: in-batch models too
    reloaded = keras.saving.load_model(run.model, compile=False, safe_mode=True)
    before = np.asarray(model(batch, training=False))
    after = np.asarray(reloaded(batch, training=False))
    if not np.allclose(before, after, rtol=1e-5, atol=1e-6):
        raise TrainingFailed(
            f"{run.model}: the reloaded model predicts differently from the trained one "
            f"(max difference {np.max(np.abs(before - after)):.3g}); a layer may not save its state"
        )


def _metrics_payload(cfg: Config, prepared: _Prepared, result, final, trainer, started, precise_bn,
                     distribution: Distribution) -> RunMetrics:
    import keras

    info, splits, model = prepared.splits.info, prepared.splits, prepared.model
    history = result.history
    first_epoch = history[0]["seconds"] if history else None
    return RunMetrics(
        name=cfg.name,
        task=info.task,
        task_reason=info.task_reason,
        final={name: final.get(name) for name in ("train", "val", "test")},
        epochs_run=len(history),
        best_epoch=result.best_epoch,
        stopped_early=result.stopped_early,
        global_step=trainer.global_step,
        resumed_from_step=result.started_at_step if result.resumed_from else None,
        resume=None if result.resumed_from is None else ResumeInfo(
            checkpoint=result.resumed_from.name, from_step=result.started_at_step, steps_trained=result.steps_trained,
        ),
        timing=Timing(
            fit_seconds=round(result.fit_seconds, 4),
            first_epoch_seconds=round(first_epoch, 4) if first_epoch is not None else None,
            total_seconds=round(time.perf_counter() - started, 4),
        ),
        throughput=Throughput(train_samples_per_second=round(result.samples_seen / max(result.fit_seconds, 1e-9), 1)),
        compile=CompileInfo(jit_compile=result.jit_compile, steps_per_execution=result.steps_per_execution,
                            traces=trainer.trace_counts(), notes=result.notes, plan=_plan_info(result.plan)),
        deterministic=cfg.train.deterministic,
        precision=prepared.precision,
        loss_fingerprint=result.loss_fingerprint,
        data={name: len(split) for name, split in _present(splits).items()},
        params={"trainable": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
                "total": int(sum(np.prod(v.shape) for v in model.variables))},
        keras_version=keras.__version__,
        precise_bn=PreciseBNInfo(**asdict(precise_bn)) if precise_bn is not None else None,
        warnings=_warnings(cfg, prepared, result, final, precise_bn),
        distribute=DistributeInfo(strategy=distribution.strategy_name, replicas=distribution.replicas,
                                  workers=distribution.workers,
                                  per_replica_batch=cfg.data.batch_size // distribution.replicas,
                                  input_sharding=distribution.input_sharding),
    )


def _environment(devices: list[str]) -> dict[str, Any]:
    import keras
    import tensorflow as tf

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


def _plan_info(plan) -> PlanInfo | None:
    if plan is None:
        return None
    return PlanInfo(jit=plan.jit, why=plan.why, steps_per_execution=plan.steps_per_execution, source=plan.source,
                    ms_per_step={"xla" if jit else "graph": round(seconds * 1e3, 4)
                                 for jit, seconds in plan.per_step.items()})
