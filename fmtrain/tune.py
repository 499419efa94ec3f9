"""``fmtrain tune``: an Optuna search over config keys; every trial is a normal run directory.

The study lives in ``STUDY_DIR/study.db`` (SQLite), so a search that was stopped or killed
continues where it was: finished trials are never run again, and a trial the stopped process left
unfinished is retried with the same values. Each trial's config is the base config plus ``--set``
style overrides, validated by :mod:`fmtrain.config`'s loader; every key of the search space is
checked against the schema at its lowest and highest value (every choice) before the first trial.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fmtrain.config.yaml_marks import dump_yaml
from fmtrain.engine.callbacks import Callback
from fmtrain.engine.device import quiet_tensorflow_logs
from fmtrain.errors import ConfigError, Interrupted, TrainingFailed
from fmtrain.fileio import atomic_write_text
from fmtrain.tune_options import BEST_CONFIG, STUDY_DB, Objective, TrialRow, TuneOptions, TuneOutcome
from fmtrain.tune_space import SearchParam, as_overrides, check_space, short

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

if TYPE_CHECKING:
    from fmtrain.config.schema import Config

__all__ = ["BEST_CONFIG", "STUDY_DB", "STUDY_NAME", "Objective", "PruningCallback", "TrialRow", "TuneOptions",
           "TuneOutcome", "tune"]

STUDY_NAME = "fmtrain"
INSTALL = "pip install 'fmtrain[tune]'"
# Trial states stored as user attributes: why a FAIL happened, and which trial a retry repeats.
_DIVERGED, _INTERRUPTED, _RETRY_OF, _RUN_DIR = "diverged", "interrupted", "retry_of", "run_dir"
_VALUES, _OVERRIDES = "values", "overrides"


class PruningCallback(Callback):
    """Reports the objective's metric to Optuna after each epoch; stops the run when the pruner says so.

    The run then ends as an early-stopped one does (model saved, report written), and the trial is
    recorded as pruned.
    """

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None
        """The 1-based epoch after which the pruner stopped the run."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.pruned_at is not None:  # a later training phase: stop it too
            self.trainer.stop_training = True
            return
        if self.metric not in logs:  # checked before training; a test-split metric is refused earlier
            return
        self.trial.report(float(logs[self.metric]), step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.trainer.stop_training = True


def tune(config: Path, space: list[SearchParam], options: TuneOptions) -> TuneOutcome:
    """Run (or continue) the study in ``options.study_dir`` until it has ``options.trials`` finished trials.

    Raises:
        ConfigError, DataError: a bad config, space or data (before the first trial, where it can be found then).
        Interrupted: SIGINT/SIGTERM during a trial; that trial is retried when the study continues.
    """
    optuna = _import_optuna()
    base = check_space(space, config, options.overrides)
    study_dir = Path(options.study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    quiet_tensorflow_logs(options.verbose)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # fmtrain reports failed trials itself, in one line
    with _only_process(study_dir):
        storage = optuna.storages.RDBStorage(f"sqlite:///{(study_dir / STUDY_DB).resolve()}")
        study = _open_study(storage, base, options)
        _check_same_space(study, space, study_dir)
        _retry_unfinished(study, storage)
        before = len(_finished(study))
        if options.trials > before:  # each trial ends finished (diverged ones too) or stops the search
            study.optimize(functools.partial(_run_trial, config=config, space=space, options=options),
                           n_trials=options.trials - before, catch=(TrainingFailed,))
        ran = len(_finished(study)) - before
        rows = [_row(trial) for trial in study.trials]
        best_trial = _best(study)
        best_config = None
        if best_trial is not None:
            best_config = _write_best(study_dir, config, best_trial)
        best = next((row for row in rows if best_trial is not None and row.number == best_trial.number), None)
    return TuneOutcome(study_dir, rows, best, best_config, ran)


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"fmtrain tune needs Optuna, which is not installed; run: {INSTALL}") from None
    return optuna


def _open_study(storage, base: Config, options: TuneOptions):
    import optuna

    objective = options.objective
    pruner = options.pruner if options.pruner is not None else (
        optuna.pruners.MedianPruner() if options.prune else optuna.pruners.NopPruner())

    def create():
        return optuna.create_study(storage=storage, pruner=pruner, study_name=STUDY_NAME,
                                   direction=objective.direction, load_if_exists=True)

    study = create()
    stored = (study.direction.name.lower(), study.user_attrs.get("metric", objective.metric))
    if stored != (objective.direction, objective.metric):
        if _finished(study) or any(Path(options.study_dir).glob("trial-*")):
            raise ConfigError(f"{options.study_dir / STUDY_DB}: this study's objective is {stored[1]} "
                              f"({stored[0]}); --metric {objective.metric} --direction {objective.direction} "
                              "needs a new --study-dir")
        optuna.delete_study(study_name=STUDY_NAME, storage=storage)  # nothing ran: start it afresh
        study = create()
    study.set_user_attr("metric", objective.metric)
    # Seeded from the config and the trials so far: a continued study does not redraw its first values.
    study.sampler = optuna.samplers.TPESampler(seed=base.seed + len(study.get_trials(deepcopy=False)))
    return study


def _check_same_space(study, space: list[SearchParam], study_dir: Path) -> None:
    keys = sorted(p.key for p in space)
    stored = study.user_attrs.get("keys")
    if stored is not None and stored != keys and _finished(study):
        raise ConfigError(f"{study_dir / STUDY_DB}: this study searches {', '.join(stored)}; the space file has "
                          f"{', '.join(keys)}; use a new --study-dir for a different search")
    study.set_user_attr("keys", keys)


def _finished(study) -> list:
    """Trials that need not run again: complete, pruned, or failed by diverging."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and t.user_attrs.get(_DIVERGED))]


def _retry_unfinished(study, storage) -> None:
    """Mark trials a killed process left running as failed, and queue each unfinished trial's values once more."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(_RETRY_OF) for t in trials}
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    for trial in trials:
        if trial.state == TrialState.RUNNING:  # only one process works on a study (_only_process)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, _INTERRUPTED, True)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        elif not (trial.state == TrialState.FAIL and trial.user_attrs.get(_INTERRUPTED)):
            continue
        if trial.number not in retried and trial.params:
            study.enqueue_trial(trial.params, user_attrs={_RETRY_OF: trial.number})


def _run_trial(trial, *, config: Path, space: list[SearchParam], options: TuneOptions) -> float:
    import optuna

    from fmtrain.config import load_config
    from fmtrain.fit import FitOptions, fit

    values = {param.key: param.suggest(trial) for param in space}
    overrides = [*options.overrides, *as_overrides(values)]
    trial.set_user_attr(_VALUES, values)
    trial.set_user_attr(_OVERRIDES, overrides)
    run_dir = Path(options.study_dir) / f"trial-{trial.number:04d}"
    trial.set_user_attr(_RUN_DIR, run_dir.name)
    cfg = load_config(config, overrides)
    objective = options.objective
    pruning = PruningCallback(trial, objective.metric)
    fit_options = FitOptions(run_dir=run_dir, device=options.device, quiet=options.quiet, verbose=options.verbose,
                             expectations=[objective.expectation()], callbacks=[pruning])
    shown = ", ".join(f"{key}={short(value)}" for key, value in values.items())
    try:
        outcome = fit(cfg, fit_options)
    except TrainingFailed as exc:
        trial.set_user_attr(_DIVERGED, True)
        options.report(f"trial {trial.number}: failed ({exc}); {shown}")
        raise
    except (Interrupted, KeyboardInterrupt):
        trial.set_user_attr(_INTERRUPTED, True)
        raise
    except ConfigError as exc:  # the metric's name is checked as an --expect would be: say --metric
        raise ConfigError(str(exc).replace(f"--expect {objective.expectation()}", f"--metric {objective.metric}")) \
            from None
    epochs = outcome.metrics.epochs_run
    trial.set_user_attr("epochs", epochs)
    if pruning.pruned_at is not None:
        options.report(f"trial {trial.number}: pruned after epoch {pruning.pruned_at}; {shown}")
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
    value = float((outcome.metrics.final.get(objective.split) or {})[objective.name])
    options.report(f"trial {trial.number}: {objective.metric} {value:.4f}; {shown}")
    return value


def _row(trial) -> TrialRow:
    values = trial.user_attrs.get(_VALUES) or trial.params
    state = trial.state.name.lower()
    if trial.user_attrs.get(_DIVERGED):
        state = "diverged"
    elif trial.user_attrs.get(_INTERRUPTED):
        state = "unfinished"
    return TrialRow(trial.number, state, trial.value, values, trial.user_attrs.get(_RUN_DIR),
                    trial.user_attrs.get("epochs"))


def _best(study):
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def _write_best(study_dir: Path, config: Path, trial) -> Path:
    """``best.yaml``: the whole resolved config the best trial ran with (every default written out)."""
    from fmtrain.config import load_config

    ran_with = study_dir / trial.user_attrs[_RUN_DIR] / "config.yaml"
    cfg = load_config(ran_with) if ran_with.is_file() else load_config(config, trial.user_attrs[_OVERRIDES])
    path = study_dir / BEST_CONFIG
    atomic_write_text(path, dump_yaml(cfg.to_yaml_dict()))
    return path


@contextmanager
def _only_process(study_dir: Path) -> Iterator[None]:
    """Hold ``study_dir/.lock`` while tuning: trials left running are then known to be a killed process's."""
    if fcntl is None:  # Windows: one process per study is up to the user
        yield
        return
    with open(study_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{study_dir}: another fmtrain tune is working on this study; wait for it or "
                              "use another --study-dir") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
