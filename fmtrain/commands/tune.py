"""``fmtrain tune CONFIG --space space.yaml --trials N``: an Optuna search; see :mod:`fmtrain.tune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, Device, Overrides, Quiet, Verbose, check_device, console, flag, run_action
from fmtrain.tune_options import BEST_CONFIG, STUDY_DB, Objective, TuneOptions, TuneOutcome


def register(app: typer.Typer) -> None:
    app.command("tune", cls=Command)(tune_command)


def tune_command(
    config: Annotated[Path, typer.Argument(help="The YAML config every trial starts from.", show_default=False)],
    space: Annotated[Path, typer.Option(
        "--space", help="YAML mapping config keys to ranges, e.g. "
        "'optimizer.learning_rate: {type: log_uniform, low: 1e-4, high: 1e-2}' "
        "(types: log_uniform, uniform, int, categorical with choices).", show_default=False)],
    trials: Annotated[int, typer.Option("--trials", min=1, show_default=False,
                                        help="Finished trials the study should have; a continued study runs the rest.",
                                        )],
    study_dir: Annotated[Path | None, typer.Option(
        "--study-dir", help=f"Where {STUDY_DB}, the trial runs and {BEST_CONFIG} go (default: studies/<name>); "
        "run again to continue an interrupted search.")] = None,
    metric: Annotated[str, typer.Option("--metric", help="Epoch-line metric to optimize: val_loss, val_accuracy, …")]
    = "val_loss",
    direction: Annotated[str | None, typer.Option(
        "--direction", help="minimize or maximize (default: maximize accuracy, AUC, F1, precision, recall; "
        "minimize the rest).", show_default=False)] = None,
    no_prune: Annotated[bool, flag("--no-prune", help="Run every trial to the end (default: Optuna's median "
                                                      "pruner stops trials behind the others).")] = False,
    overrides: Overrides = None,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Search CONFIG's hyperparameters with Optuna: each trial a run directory, the best config in best.yaml."""

    def action() -> int:
        from fmtrain.config import load_config
        from fmtrain.tune import tune
        from fmtrain.tune_space import read_space

        objective = Objective.parse(metric, direction)
        params = read_space(space)
        directory = study_dir
        if directory is None:
            directory = Path("studies") / load_config(config, overrides or []).name
        options = TuneOptions(study_dir=directory, trials=trials, objective=objective, overrides=overrides or [],
                              device=check_device(device), quiet=quiet, verbose=verbose, prune=not no_prune,
                              report=(lambda line: None) if quiet else (lambda line: typer.echo(line, err=True)))
        outcome = tune(config, params, options)
        if quiet:
            typer.echo(str(outcome.best_config or outcome.study_dir))
        else:
            print_summary(outcome, objective)
        return 0

    run_action(action, debug)


def print_summary(outcome: TuneOutcome, objective: Objective) -> None:
    """The study's trials as a table, the best one starred; then where best.yaml is."""
    from rich.table import Table

    keys = list(dict.fromkeys(key for row in outcome.trials for key in row.params))
    leaves = [key.rsplit(".", 1)[-1] for key in keys]
    headers = [leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(keys, leaves, strict=True)]
    table = Table(title=f"{outcome.study_dir}: {len(outcome.trials)} trials, {outcome.ran} run now",
                  caption=f"each trial's run: {outcome.study_dir}/trial-NNNN", header_style="bold")
    for column in ("trial", "state", objective.metric, *headers, "epochs"):
        table.add_column(column, justify="right" if column in ("trial", objective.metric, "epochs") else "left",
                         overflow="fold")
    best = outcome.best.number if outcome.best else None
    for row in outcome.trials:
        table.add_row(f"{row.number}{' *' if row.number == best else ''}", row.state,
                      "" if row.value is None else f"{row.value:.4f}", *(_shown(row.params.get(key)) for key in keys),
                      "" if row.epochs is None else str(row.epochs), style="bold" if row.number == best else None)
    out = console()
    out.print(table)
    if outcome.best_config is not None:
        out.print(f"best: trial {best}, {objective.metric} {outcome.best.value:.4f} ({objective.direction}); "
                  f"its config: {outcome.best_config}")
    else:
        out.print(f"no trial has completed yet; {BEST_CONFIG} is written once one has")


def _shown(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
