"""The ``fmtrain`` command line. Each command parses its options and calls one function.

TensorFlow is imported only inside the commands that train or load models, so ``--help``,
``--version``, ``validate``, ``list`` and ``schema`` answer instantly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from fmtrain import __version__
from fmtrain.errors import FmtrainError

app = typer.Typer(
    name="fmtrain",
    help="Train and evaluate Keras models from YAML files.\n\n"
    "[bold]fmtrain fit[/] CONFIG trains and writes a run directory; [bold]fmtrain eval[/] RUN_DIR evaluates it.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE",
                 help="Override a config value (parsed as YAML); repeatable, e.g. --set train.epochs=3."),
]
Expects = Annotated[
    list[str] | None,
    typer.Option("--expect", "-e", metavar="METRIC>=VALUE",
                 help="Threshold that sets exit code 3 when missed, e.g. 'test.accuracy>=0.95', or 'val_loss<0.3' "
                 "as the epoch line names it; repeatable."),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or gpu.", case_sensitive=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show TensorFlow's own log output.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the Python traceback on errors.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fmtrain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train and evaluate Keras models from YAML files."""


def _run(action: Callable[[], int | None], debug: bool) -> None:
    """Run a command body; map fmtrain's errors to one line on stderr and an exit code."""
    try:
        code = action() or 0
    except FmtrainError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # the last line of defence: one line, not a traceback, unless --debug
        if debug:
            raise
        typer.echo(f"error: unexpected {type(exc).__name__}: {_gist(exc)} (run again with --debug for the traceback)",
                   err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _gist(exc: Exception) -> str:
    """The informative line of an exception (TensorFlow puts it last, after 'in user code:')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return ""
    return (lines[-1] if lines[0].startswith("in user code") else lines[0])[:300]


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _check_device(device: str) -> str:
    from fmtrain.errors import ConfigError

    device = device.lower()
    if device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"--device {device}: expected auto, cpu or gpu")
    return device


@app.command()
def fit(
    config: Annotated[Path | None, typer.Argument(help="The YAML config file (optional with --resume).",
                                                  show_default=False)] = None,
    overrides: Overrides = None,
    resume: Annotated[Path | None, typer.Option("--resume",
                                                help="Continue this run directory from its latest checkpoint.")] = None,
    allow_config_change: Annotated[bool, typer.Option(
        "--allow-config-change", help="With --resume: continue even though CONFIG/--set differ from the run's config.",
    )] = False,
    run_dir: Annotated[Path | None, typer.Option("--run-dir",
                                                 help="Write the run here instead of runs/<name>/<UTC time>/.")] = None,
    runs_root: Annotated[Path, typer.Option("--runs-root",
                                            help="Parent folder of default run directories.")] = Path("runs"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run in --run-dir.")] = False,
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="Whole chain on a small subset for a couple of epochs: data → fit → save → reload → eval.",
    )] = False,
    expect: Expects = None,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Train a model from CONFIG and write a run directory (config, metrics, history, model, report)."""

    def action() -> int:
        from fmtrain.config import load_config
        from fmtrain.engine.device import quiet_tensorflow_logs
        from fmtrain.errors import ConfigError
        from fmtrain.expectations import parse_expectation
        from fmtrain.fit import FitOptions
        from fmtrain.fit import fit as fit_run
        from fmtrain.resume import resume_config

        expectations = [parse_expectation(e) for e in expect or []]
        if resume is not None:
            if run_dir is not None or overwrite:
                raise ConfigError("--resume continues RUN_DIR in place; leave out --run-dir and --overwrite")
            requested = None
            if config is not None:
                requested = load_config(config, overrides or [])
            elif overrides:
                requested = load_config(Path(resume) / "config.yaml", overrides)
            cfg = resume_config(resume, requested, allow_config_change)
        elif config is None:
            raise ConfigError("fit needs a CONFIG file (or --resume RUN_DIR)")
        else:
            cfg = load_config(config, overrides or [])
        quiet_tensorflow_logs(verbose)
        console = _console()
        options = FitOptions(run_dir=run_dir, runs_root=runs_root, overwrite=overwrite, smoke=smoke, resume=resume,
                             expectations=expectations, device=_check_device(device), quiet=quiet,
                             verbose=verbose, console=console)
        outcome = fit_run(cfg, options)
        if quiet:
            typer.echo(str(outcome.run.path))
        else:
            from fmtrain.report import print_fit_summary

            print_fit_summary(console, outcome.metrics, outcome.run.path)
        for line in outcome.expectation_lines:
            typer.echo(line)
        return 0

    _run(action, debug)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by fmtrain fit.", show_default=False)],
    split: Annotated[str, typer.Option("--split", help="Which split of the run's data: test, val or train.")] = "test",
    data: Annotated[Path | None, typer.Option(
        "--data", help="Evaluate on this file instead (same format as the run's data.path).")] = None,
    overrides: Overrides = None,
    expect: Expects = None,
    unsafe: Annotated[bool, typer.Option(
        "--unsafe", help="Allow loading models that contain code (Lambda layers). Only for runs you trust.")] = False,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Reload RUN_DIR's model and evaluate it: loss, metrics, per-class precision/recall/F1, confusion matrix."""

    def action() -> int:
        from fmtrain.engine.device import quiet_tensorflow_logs
        from fmtrain.errors import ConfigError
        from fmtrain.evaluate import EvalOptions, evaluate_run
        from fmtrain.expectations import parse_expectation

        if split not in ("test", "val", "train"):
            raise ConfigError(f"--split {split}: expected test, val or train")
        expectations = [parse_expectation(e) for e in expect or []]
        quiet_tensorflow_logs(verbose)
        options = EvalOptions(split=split, data_path=data, overrides=overrides or [], expectations=expectations,
                              device=_check_device(device), unsafe=unsafe, quiet=quiet, verbose=verbose,
                              console=_console())
        outcome = evaluate_run(run_dir, options)
        if quiet:
            typer.echo(json.dumps(outcome.result["metrics"]))
        for line in outcome.expectation_lines:
            typer.echo(line)
        return 0

    _run(action, debug)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config file.", show_default=False)],
    overrides: Overrides = None,
    show: Annotated[bool, typer.Option("--show",
                                       help="Print the resolved config (every default written out).")] = False,
    debug: Debug = False,
) -> None:
    """Check CONFIG without importing TensorFlow: exit 0 when valid, 2 with the problems otherwise."""

    def action() -> int:
        import yaml

        from fmtrain.config import load_config

        cfg = load_config(config, overrides or [])
        if show:
            typer.echo(yaml.safe_dump(cfg.to_yaml_dict(), sort_keys=False), nl=False)
        else:
            typer.echo(f"{config}: ok ({cfg.model.type} model on {cfg.data.source}, {cfg.train.epochs} epochs)")
        return 0

    _run(action, debug)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by fmtrain fit.", show_default=False)],
    debug: Debug = False,
) -> None:
    """(Re)write RUN_DIR's report.md, report.html and plots from its files."""

    def action() -> int:
        from fmtrain.report import write_report

        typer.echo(str(write_report(run_dir)))
        return 0

    _run(action, debug)


LISTS = ("models", "sources", "preprocess", "metrics")


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help=f"One of: {', '.join(LISTS)}.")] = "models",
    debug: Debug = False,
) -> None:
    """List what a config can name: model types, data sources, preprocessing steps or metrics."""

    def action() -> int:
        from fmtrain.errors import ConfigError
        from fmtrain.registry import did_you_mean

        registries = _registries()
        if what not in registries:
            raise ConfigError(f"list {what}: expected one of {', '.join(LISTS)}{did_you_mean(what, LISTS)}")
        from rich.table import Table

        table = Table(title=what, show_header=True, header_style="bold")
        table.add_column("name")
        table.add_column("what it is")
        for entry in registries[what].entries():
            table.add_row(entry.name, entry.summary)
        _console().print(table)
        if what == "metrics":
            typer.echo("Any other keras.metrics name (mae, mse, r2_score, …) works too.")
        return 0

    _run(action, debug)


def _registries() -> dict:
    from fmtrain.data.sources import SOURCES
    from fmtrain.metrics import METRICS
    from fmtrain.models import MODELS
    from fmtrain.preprocess import STEPS

    return {"models": MODELS, "sources": SOURCES, "preprocess": STEPS, "metrics": METRICS}


@app.command()
def schema(debug: Debug = False) -> None:
    """Print the config's JSON Schema (for editors and linters)."""

    def action() -> int:
        from fmtrain.config.schema import Config

        typer.echo(json.dumps(Config.model_json_schema(mode="validation"), indent=2))
        return 0

    _run(action, debug)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fmtrain")


if __name__ == "__main__":
    sys.exit(main())
