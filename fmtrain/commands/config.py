"""``fmtrain config show CONFIG [--set …] [--explain]``: the resolved config, and where each value came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, OneLineUsageErrors, Overrides, flag, run_action

config_app = typer.Typer(cls=OneLineUsageErrors, name="config", no_args_is_help=True, rich_markup_mode="rich",
                         help="Look at a config as fmtrain resolves it (no TensorFlow).")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app)


@config_app.command("show", cls=Command)
def show(
    config: Annotated[Path, typer.Argument(help="The YAML config file.", show_default=False)],
    overrides: Overrides = None,
    explain: Annotated[bool, flag("--explain", help="Say where each value came from: default, which file:line "
                                                    "of the extends: chain, or --set.")] = False,
    debug: Debug = False,
) -> None:
    """Print CONFIG resolved: extends: merged, --set applied, every default written out."""

    def action() -> int:
        from fmtrain.config import dump_yaml
        from fmtrain.config.provenance import explain_config, format_explained

        cfg, rows = explain_config(config, overrides or [])
        typer.echo(format_explained(rows) if explain else dump_yaml(cfg.to_yaml_dict()), nl=False)
        return 0

    run_action(action, debug)
