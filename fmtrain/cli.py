"""The ``fmtrain`` command line. Each command parses its options and calls one function.

TensorFlow is imported only inside the commands that train or load models, so ``--help``,
``--version``, ``validate``, ``list`` and ``schema`` answer instantly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from fmtrain import __version__
from fmtrain import cache as cache_store
from fmtrain.cli_kit import Command as _Command
from fmtrain.cli_kit import Debug, Device, Expects, Overrides, Quiet, RunDirArg, Unsafe, Verbose
from fmtrain.cli_kit import OneLineUsageErrors as _OneLineUsageErrors
from fmtrain.cli_kit import check_device as _check_device
from fmtrain.cli_kit import console as _console
from fmtrain.cli_kit import flag as _flag
from fmtrain.cli_kit import run_action as _run
from fmtrain.config.schema_cache import LISTS, component_lists, json_schema_text
from fmtrain.engine.device import quiet_tensorflow_logs
from fmtrain.errors import ConfigError
from fmtrain.expectations import EVAL_DATA_SPLIT, SPLITS, parse_expectation
from fmtrain.registry import did_you_mean

app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="fmtrain",
    help="Train and evaluate Keras models from YAML files.\n\n"
    "[bold]fmtrain fit[/] CONFIG trains and writes a run directory; [bold]fmtrain eval[/] RUN_DIR evaluates it.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

JunitXml = Annotated[Path | None, typer.Option(
    "--junit-xml", metavar="PATH",
    help="Write the checks (each --expect, each --smoke stage) as JUnit XML; inside GitHub Actions also append "
    "a summary to $GITHUB_STEP_SUMMARY.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fmtrain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, _flag("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train and evaluate Keras models from YAML files."""


@app.command(cls=_Command)
def fit(
    config: Annotated[Path | None, typer.Argument(help="The YAML config file (optional with --resume).",
                                                  show_default=False)] = None,
    overrides: Overrides = None,
    resume: Annotated[Path | None, typer.Option("--resume",
                                                help="Continue this run directory from its latest checkpoint.")] = None,
    allow_config_change: Annotated[bool, _flag(
        "--allow-config-change", help="With --resume: continue even though CONFIG/--set differ from the run's config.",
    )] = False,
    run_dir: Annotated[Path | None, typer.Option("--run-dir",
                                                 help="Write the run here instead of runs/<name>/<UTC time>/.")] = None,
    runs_root: Annotated[Path, typer.Option("--runs-root",
                                            help="Parent folder of default run directories.")] = Path("runs"),
    overwrite: Annotated[bool, _flag("--overwrite", help="Replace an existing run in --run-dir.")] = False,
    smoke: Annotated[bool, _flag(
        "--smoke", help="Whole chain on a small subset for a couple of epochs: data → fit → save → reload → eval.",
    )] = False,
    expect: Expects = None,
    junit_xml: JunitXml = None,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Train a model from CONFIG and write a run directory (config, metrics, history, model, report)."""

    def action() -> int:
        from fmtrain.config import load_config
        from fmtrain.fit import FitOptions
        from fmtrain.fit import fit as fit_run
        from fmtrain.integrations import FitReports, require_mlflow
        from fmtrain.resume import resume_config
        from fmtrain.runs import default_run_path

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
        require_mlflow(cfg)
        quiet_tensorflow_logs(verbose)
        console = _console()
        # Fixed here, so the reports find the run even when fit raises.
        path = resume or run_dir or default_run_path(runs_root, cfg.name)
        reports = FitReports(cfg, path, expectations, junit_xml=junit_xml, smoke=smoke)
        options = FitOptions(run_dir=None if resume else path, runs_root=runs_root, overwrite=overwrite, smoke=smoke,
                             resume=resume, expectations=expectations, device=_check_device(device), quiet=quiet,
                             verbose=verbose, console=console, callbacks=reports.callbacks)
        try:
            outcome = fit_run(cfg, options)
        except Exception as exc:
            reports.finish(exc)
            raise
        logged = reports.finish(None)
        if logged is not None and not quiet:
            typer.echo(f"mlflow: run {logged.run_id} in {logged.tracking_uri}", err=True)
        if quiet:
            typer.echo(str(outcome.run.path))
        else:
            from fmtrain.report import print_fit_summary

            print_fit_summary(console, outcome.metrics, outcome.run.path)
        for line in outcome.expectation_lines:
            typer.echo(line)
        return 0

    _run(action, debug)


@app.command("eval", cls=_Command)
def eval_(
    run_dir: RunDirArg,
    split: Annotated[str, typer.Option("--split", help="Which split of the run's data: test, val or train.")] = "test",
    data: Annotated[Path | None, typer.Option(
        "--data", help="Evaluate on this file instead (same format as the run's data.path).")] = None,
    overrides: Overrides = None,
    expect: Expects = None,
    unsafe: Unsafe = False,
    junit_xml: JunitXml = None,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Reload RUN_DIR's model and evaluate it: loss, metrics, per-class precision/recall/F1, confusion matrix."""

    def action() -> int:
        from fmtrain.evaluate import EvalOptions, evaluate_run
        from fmtrain.integrations import eval_reports

        if split not in ("test", "val", "train"):
            raise ConfigError(f"--split {split}: expected test, val or train")
        splits = (*SPLITS, EVAL_DATA_SPLIT) if data is not None else SPLITS  # --data results are split "data"
        expectations = [parse_expectation(e, splits) for e in expect or []]
        quiet_tensorflow_logs(verbose)
        # With --junit-xml the thresholds are checked here, after the report, by the same rule.
        options = EvalOptions(split=split, data_path=data, overrides=overrides or [],
                              expectations=[] if junit_xml else expectations, device=_check_device(device),
                              unsafe=unsafe, quiet=quiet, verbose=verbose, console=_console())
        suite = f"fmtrain eval {run_dir}"
        try:
            outcome = evaluate_run(run_dir, options)
        except Exception as exc:
            if junit_xml is not None:
                eval_reports(junit_xml, suite, expectations, None, None, exc)
            raise
        lines = outcome.expectation_lines
        if junit_xml is not None:
            lines = eval_reports(junit_xml, suite, expectations, outcome.result["split"], outcome.result["metrics"])
        if quiet:
            typer.echo(json.dumps(outcome.result["metrics"]))
        for line in lines:
            typer.echo(line)
        return 0

    _run(action, debug)


@app.command(cls=_Command)
def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config file.", show_default=False)],
    overrides: Overrides = None,
    show: Annotated[bool, _flag("--show",
                                       help="Print the resolved config (every default written out).")] = False,
    debug: Debug = False,
) -> None:
    """Check CONFIG without importing TensorFlow: exit 0 when valid, 2 with the problems otherwise."""

    def action() -> int:
        from fmtrain.config import dump_yaml, load_config

        cfg = load_config(config, overrides or [])
        if show:  # written by the rules it is read back with (a name like '1e3' stays text)
            typer.echo(dump_yaml(cfg.to_yaml_dict()), nl=False)
        else:
            typer.echo(f"{config}: ok ({cfg.model.type} model on {cfg.data.source}, {cfg.train.epochs} epochs)")
        return 0

    _run(action, debug)


@app.command(cls=_Command)
def report(
    run_dirs: Annotated[list[Path], typer.Argument(
        metavar="RUN_DIR", help="Run directories written by fmtrain fit; two or more are compared.",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", help="With several runs: the comparison page to write (.html or .md).")] = None,
    debug: Debug = False,
) -> None:
    """(Re)write RUN_DIR's report.md, report.html and plots from its files; with several runs, write one
    page comparing them (config differences, final metrics, overlaid learning curves)."""

    def action() -> int:
        from fmtrain.report import write_comparison, write_report

        if len(run_dirs) == 1:
            if output is not None:
                raise ConfigError(f"--output {output}: compares several runs; "
                                  f"one run's report is written into {run_dirs[0]} (leave out --output)")
            typer.echo(str(write_report(run_dirs[0])))
        else:
            typer.echo(str(write_comparison(run_dirs, output or Path("compare.html"))))
        return 0

    _run(action, debug)


@app.command("list", cls=_Command)
def list_(
    what: Annotated[str, typer.Argument(help=f"One of: {', '.join(LISTS)}.")] = "models",
    debug: Debug = False,
) -> None:
    """List what a config can name: model types, data sources, preprocessing steps or metrics."""

    def action() -> int:
        if what not in LISTS:
            raise ConfigError(f"list {what}: expected one of {', '.join(LISTS)}{did_you_mean(what, LISTS)}")
        from rich.table import Table

        table = Table(title=what, show_header=True, header_style="bold")
        table.add_column("name")
        table.add_column("what it is")
        for entry in component_lists()[what]:
            table.add_row(entry.name, entry.summary)
        _console().print(table)
        if what == "metrics":
            typer.echo("Any other keras.metrics name (mae, mse, r2_score, …) works too.")
        return 0

    _run(action, debug)


def _registries() -> dict:
    """The registries `list` shows, with their builders (scripts/readme_tables.py; `list` itself reads the cache)."""
    from fmtrain import components

    return components.listed()


@app.command(cls=_Command)
def schema(debug: Debug = False) -> None:
    """Print the config's JSON Schema (for editors and linters)."""

    def action() -> int:
        typer.echo(json_schema_text())
        return 0

    _run(action, debug)


@app.command(cls=_Command)
def cache(
    action: Annotated[str, typer.Argument(help="dir: print where the cache is; clear: delete everything in it.",
                                          show_default=False)],
    debug: Debug = False,
) -> None:
    """fmtrain's cache of decided compile plans and of the JSON Schema (under ~/.cache/fmtrain or
    $FMTRAIN_CACHE_DIR): print where it is, or clear it."""

    def action_() -> int:
        if action == "dir":
            typer.echo(str(cache_store.cache_dir()))
        elif action == "clear":
            removed = cache_store.clear()
            counts = ", ".join(f"{count} {kind} file{'' if count == 1 else 's'}" for kind, count in removed.items())
            typer.echo(f"removed {counts} from {cache_store.cache_dir()}")
        else:
            raise ConfigError(f"cache {action}: expected dir or clear{did_you_mean(action, ('dir', 'clear'))}")
        return 0

    _run(action_, debug)


from fmtrain.commands import register_all  # noqa: E402  (the command modules need `app` defined above)

register_all(app)


def main() -> None:
    """Console-script entry point."""
    # pydantic looks for plugins on first use by reading every installed package's entry points
    # (~60 ms, a fifth of `fmtrain validate`); fmtrain's own config models need none. A user who
    # sets the variable keeps their choice.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    app(prog_name="fmtrain")


if __name__ == "__main__":
    sys.exit(main())
