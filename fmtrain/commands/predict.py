"""``fmtrain predict RUN_DIR INPUT``: the run's model on new examples, to a csv, jsonl or npz file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import (
    Command,
    Debug,
    Device,
    Quiet,
    RunDirArg,
    Unsafe,
    Verbose,
    check_device,
    console,
    run_action,
)
from fmtrain.engine.device import quiet_tensorflow_logs
from fmtrain.predict_options import PredictOptions, check_batch_size, check_output


def register(app: typer.Typer) -> None:
    app.command("predict", cls=Command)(predict)


def predict(
    run_dir: RunDirArg,
    input_path: Annotated[str, typer.Argument(
        metavar="INPUT", help="Examples in the format of the run's data (csv, npz, image or text folder, text file); "
        "for a bundled set, an .npz with array 'x'; for a streamed run (tfrecord, parquet, csv shards), a file, "
        "a quoted glob or a folder of them (gs://… too), read a batch at a time.", show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write every prediction here: .csv, .jsonl or .npz (default: print a summary).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per model call and per write.")] = 256,
    unsafe: Unsafe = False,
    device: Device = "auto",
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Predict INPUT with RUN_DIR's model: row, class and probabilities (or values), batch by batch."""

    def action() -> int:
        from fmtrain.predict import predict_run

        check_output(output)
        check_batch_size(batch_size)
        quiet_tensorflow_logs(verbose)
        options = PredictOptions(output=output, batch_size=batch_size, device=check_device(device), unsafe=unsafe,
                                 verbose=verbose)
        outcome = predict_run(run_dir, input_path, options)
        if quiet:
            typer.echo(str(output) if output is not None else str(outcome.n_rows))
        else:
            _print(outcome)
        return 0

    run_action(action, debug)


def _print(outcome) -> None:
    from rich.table import Table

    out = console()
    header, cells = outcome.preview_table()
    if cells:
        table = Table(title=f"first {len(cells)} of {outcome.n_rows} rows", header_style="bold")
        for name in header:
            table.add_column(name, justify="left" if name == "class" else "right")
        for row in cells:
            table.add_row(*row)
        out.print(table)
    if outcome.class_counts is not None:
        names = outcome.reading.class_names
        counts = ", ".join(f"{name}: {count}" for name, count in zip(names, outcome.class_counts, strict=True) if count)
        out.print(f"{outcome.n_rows} rows predicted in {_batches(outcome.batches)}; classes: {counts}")
    elif outcome.value_range is not None:
        low, high = outcome.value_range
        out.print(f"{outcome.n_rows} rows predicted in {_batches(outcome.batches)}; values {low:.6g} to {high:.6g}")
    if outcome.output is not None:
        out.print(f"predictions written to {outcome.output}")


def _batches(count: int) -> str:
    return f"{count} batch{'' if count == 1 else 'es'}"
