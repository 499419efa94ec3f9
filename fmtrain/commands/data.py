"""``fmtrain data pack``: a source's splits → TFRecord shards and the ``data:`` block that streams them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, OneLineUsageErrors, Overrides, Quiet, Verbose, run_action
from fmtrain.config.yaml_marks import dump_yaml
from fmtrain.engine.device import quiet_tensorflow_logs


def register(app: typer.Typer) -> None:
    data = typer.Typer(cls=OneLineUsageErrors, no_args_is_help=True,
                       help="Data tools: [bold]pack[/] an in-memory source, Parquet or csv shards into TFRecord "
                       "shards that stream.")
    data.command(cls=Command)(pack)
    app.add_typer(data, name="data")


def pack(
    config: Annotated[Path, typer.Argument(help="A config whose data: section names an in-memory source, parquet "
                                           "or csv with stream: true.", show_default=False)],
    out_dir: Annotated[str, typer.Argument(help="Folder (or object-store path) for the shards and data.yaml.",
                                           show_default=False)],
    shards: Annotated[int, typer.Option("--shards", "-n", help="Training shards (held-out splits in proportion).")] = 8,
    overrides: Overrides = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Write the train/val/test splits of CONFIG's data as TFRecord shards in OUT_DIR, plus a ready-to-use
    data: block (printed, and saved as OUT_DIR/data.yaml) that streams them with source: tfrecord. Parquet and
    csv shards (stream: true) are read a block of rows at a time."""

    def action() -> int:
        from fmtrain.config import load_config
        from fmtrain.data.pack import pack as pack_source

        cfg = load_config(config, overrides or [])
        quiet_tensorflow_logs(verbose)
        packed = pack_source(cfg, out_dir, shards)
        if not quiet:
            counts = ", ".join(f"{name} {n} examples in {len(packed.shards[name])} shard(s)"
                               for name, n in packed.counts.items())
            typer.echo(f"wrote {counts} to {out_dir}; the data: block is in {packed.block_path}", err=True)
        typer.echo(dump_yaml({"data": packed.block}), nl=False)
        return 0

    run_action(action, debug)
