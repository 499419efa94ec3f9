"""What every fmtrain command shares: one-line usage errors, flags shown without a value, the
common options (``--set``, ``--expect``, ``--device``, ``--quiet``, ``--verbose``, ``--debug``) and
:func:`run_action`, which maps fmtrain's errors to one ``error:`` line and an exit code.

Command modules (``fmtrain/cli.py`` and ``fmtrain/commands/*``) import from here; nothing here
imports TensorFlow.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from typer._click.exceptions import NoArgsIsHelpError, NoSuchOption, UsageError  # Typer vendors click
from typer.core import TyperCommand, TyperGroup

from fmtrain.errors import ConfigError, FmtrainError, first_line
from fmtrain.registry import did_you_mean


class _FlagsTakeNoValue:
    """``--help`` and Typer's completion flags shown without a value, like the other flags (see :func:`flag`)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class Command(_FlagsTakeNoValue, TyperCommand):
    pass


class OneLineUsageErrors(_FlagsTakeNoValue, TyperGroup):
    """Usage errors as one ``error:`` line and exit 2, like every other fmtrain error (Typer would
    draw a panel); an unknown option that is a config key gets the ``--set`` that sets it. A reader
    of stdout that goes away (``| head``) ends any command quietly (see :func:`stdout_closed`)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError:  # `fmtrain` alone: Typer's own help page
            return super().main(argv, prog_name, complete_var, standalone_mode=standalone_mode, **extra)
        except UsageError as exc:
            typer.echo(f"error: {_usage_problem(exc, argv)}", err=True)
            code = exc.exit_code
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code

    # Help pages and --version are written while the context is made, a command's output while it
    # is invoked; Typer would turn a closed pipe there into exit 1.
    def make_context(self, *args, **kwargs):
        with _reader_may_leave():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _reader_may_leave():
            return super().invoke(ctx)


SIGPIPE_EXIT = 141
"""The exit code when stdout's reader went away: 128 + SIGPIPE, what the shell reports for any Unix
tool a closed pipe ends (``git log | head``), so a ``set -o pipefail`` script treats fmtrain alike.
0 would say the whole output was delivered; 1 (Python's and Click's choice) says the command failed."""


def stdout_closed() -> typer.Exit:
    """The exit for a closed stdout (``fmtrain … | head``): stdout now points at /dev/null, so the
    interpreter's last flush of what is still buffered cannot raise a second time at exit.

    Returns:
        ``typer.Exit(SIGPIPE_EXIT)``, for the caller to raise.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor (CliRunner's)
        pass
    return typer.Exit(SIGPIPE_EXIT)


@contextmanager
def _reader_may_leave() -> Iterator[None]:
    before = _stdout_file()
    try:
        yield
        if sys.stdout is not None:  # None: started with stdout closed (`>&-`)
            sys.stdout.flush()  # what is still buffered fails here, not as a warning at exit
    except BrokenPipeError:
        raise stdout_closed() from None
    except SystemExit as exc:
        # rich's Console (tables, Typer's help pages) answers a closed pipe itself: stdout to
        # /dev/null, then exit 1. That swap of the file behind stdout is how it is told apart.
        if exc.code == 1 and before is not None and _stdout_file() != before:
            raise typer.Exit(SIGPIPE_EXIT) from None
        raise


def _stdout_file() -> tuple[int, int] | None:
    try:
        status = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return status.st_dev, status.st_ino


def _usage_problem(exc: UsageError, argv: list[str]) -> str:
    command = exc.ctx.command_path if exc.ctx is not None else "fmtrain"
    if isinstance(exc, NoSuchOption):
        name = exc.option_name
        key = _config_key(name)
        if key is not None:
            given = name.partition("=")[2] or _value_after(name, argv) or "VALUE"
            return f"{command}: no option {name}; config keys are set with --set, e.g. --set {key}={given}"
        return f"{command}: no option {name}{did_you_mean(name, exc.possibilities or [])}; see {command} --help"
    message = exc.format_message().rstrip(".")
    return f"{message[:1].lower()}{message[1:]}{' ' if message.endswith('?') else '; '}see {command} --help"


def _value_after(option: str, argv: list[str]) -> str | None:
    joined = next((arg for arg in argv if arg.startswith(f"{option}=")), None)
    if joined is not None:
        return joined.partition("=")[2]
    position = argv.index(option) if option in argv else -1
    following = argv[position + 1] if 0 <= position < len(argv) - 1 else None
    return following if following is not None and not following.startswith("-") else None


def _config_key(option: str) -> str | None:
    """The config key an unknown option names (``--epochs`` → ``train.epochs``, ``--lerning-rate`` →
    ``optimizer.learning_rate``), the shortest if several; None when nothing is close."""
    from fmtrain.config.schema import Config

    leaf = option.lstrip("-").partition("=")[0].replace("-", "_")
    schema = Config.model_json_schema()
    paths = {path for path in _key_paths(schema, schema)}
    leaves = {path.rsplit(".", 1)[-1] for path in paths}
    close = difflib.get_close_matches(leaf, leaves, n=1, cutoff=0.8)
    matches = sorted((path for path in paths if close and path.rsplit(".", 1)[-1] == close[0]),
                     key=lambda path: (path.count("."), path))
    return matches[0] if matches else None


def _key_paths(node: dict, root: dict, prefix: str = "", depth: int = 0):
    if depth > 3 or not isinstance(node, dict):
        return
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    for variant in node.get("anyOf", []) + node.get("oneOf", []):
        yield from _key_paths(variant, root, prefix, depth)
    for key, child in node.get("properties", {}).items():
        yield f"{prefix}{key}"
        yield from _key_paths(child, root, f"{prefix}{key}.", depth + 1)


def flag(*names: str, **options):
    """A boolean flag; its help shows no value (Typer would print '<bool>', as if it took one)."""
    return typer.Option(*names, metavar="", **options)


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
RunDirArg = Annotated[Path, typer.Argument(help="A run directory written by fmtrain fit.", show_default=False)]
Unsafe = Annotated[bool, flag(
    "--unsafe", help="Allow loading models that contain code (Lambda layers). Only for runs you trust.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or gpu.", case_sensitive=False)]
Quiet = Annotated[bool, flag("--quiet", "-q", help="Print only the result.")]
Verbose = Annotated[bool, flag("--verbose", "-v", help="Show TensorFlow's own log output.")]
Debug = Annotated[bool, flag("--debug", help="Show the Python traceback on errors.")]


def run_action(action: Callable[[], int | None], debug: bool) -> None:
    """Run a command body; map fmtrain's errors to one line on stderr and an exit code (a closed
    stdout to a quiet :data:`SIGPIPE_EXIT`)."""
    try:
        with _reader_may_leave():
            code = action() or 0
    except typer.Exit:
        raise
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
        typer.echo(f"error: unexpected {type(exc).__name__}: {first_line(exc, 300)} "
                   "(run again with --debug for the traceback)", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def console():
    from rich.console import Console

    return Console(highlight=False)


def check_device(device: str) -> str:

    device = device.lower()
    if device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"--device {device}: expected auto, cpu or gpu")
    return device
