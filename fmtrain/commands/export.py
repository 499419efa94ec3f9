"""``fmtrain export RUN_DIR --format saved_model|tflite|onnx``: ship the run's model, checked against Keras."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, Device, Quiet, RunDirArg, Unsafe, Verbose, check_device, flag, run_action
from fmtrain.engine.device import quiet_tensorflow_logs
from fmtrain.export_options import FORMATS, ExportOptions, check_format


def register(app: typer.Typer) -> None:
    app.command("export", cls=Command)(export)


def export(
    run_dir: RunDirArg,
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.",
                                        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write it (default: RUN_DIR/export/saved_model, model.tflite or model.onnx).",
    )] = None,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="Largest absolute difference from the Keras model's outputs that passes; past it, exit 1.",
    )] = 1e-4,
    samples: Annotated[int, typer.Option("--samples", help="Examples of the run's data to check parity on.")] = 256,
    overwrite: Annotated[bool, flag("--overwrite", help="Replace an existing export at the output path.")] = False,
    unsafe: Unsafe = False,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Export RUN_DIR's model (serving signature 'serving_default') and check it against the Keras model."""

    def action() -> int:
        from fmtrain.export import export_run

        check_format(format)
        quiet_tensorflow_logs(verbose)
        options = ExportOptions(format=format, output=output, tolerance=tolerance, samples=max(samples, 1),
                                overwrite=overwrite, unsafe=unsafe, device=check_device(device), verbose=verbose)
        outcome = export_run(run_dir, options)
        if quiet:
            typer.echo(str(outcome.path))
        else:
            typer.echo(f"{outcome.format} → {outcome.path} (serving_default: inputs {', '.join(outcome.inputs)}, "
                       "output output)")
            typer.echo(f"max abs difference from Keras: {outcome.max_abs_diff:.3g} on {outcome.samples} "
                       f"{outcome.split} examples (tolerance {outcome.tolerance:g}): ok")
        return 0

    run_action(action, debug)
