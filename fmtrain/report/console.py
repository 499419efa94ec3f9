"""Rich tables for the terminal: eval results and the end-of-fit summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmtrain.report.document import final_table, precise_bn_note
from fmtrain.report.render import format_value
from fmtrain.runs import RunMetrics

if TYPE_CHECKING:
    from rich.console import Console

# Above this many classes (or when names are too wide) the confusion matrix switches to
# index headers and no borders.
_COMPACT_CLASSES = 12
# Above this many, or when even the compact matrix is wider than the console, list the
# largest confusions instead.
_MAX_MATRIX_CLASSES = 30
_TOP_CONFUSIONS = 10


def print_eval(console: Console, result: dict[str, Any]) -> None:
    """Print an ``eval-<split>.json`` payload: metrics, then per-class scores and the
    confusion matrix when the result has a classification summary.

    Args:
        console: where to print.
        result: the parsed ``eval-<split>.json`` (``split``, ``n_samples``, ``metrics``,
            ``classification``).
    """
    from rich.table import Table
    from rich.text import Text

    split = result.get("split", "?")
    n = result.get("n_samples")
    title = f"Evaluation on {split}" + (f" ({format_value(n)} samples)" if n is not None else "")
    _heading(console, title)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in (result.get("metrics") or {}).items():
        table.add_row(Text(str(name)), format_value(value))
    console.print(table)

    summary = result.get("classification")
    if summary:
        _heading(console, f"Per class (accuracy {format_value(summary.get('accuracy'))})")
        console.print(_per_class_table(summary))
        matrix = _fitting_confusion(console, summary)
        if matrix is not None:
            _heading(console, "Confusion matrix (rows: true class, columns: predicted)")
            console.print(matrix)
        else:
            _heading(console, f"Most frequent confusions ({len(summary['class_names'])} "
                              "classes, too many for a matrix at this width)")
            console.print(_top_confusions(summary))


def print_fit_summary(console: Console, metrics: RunMetrics, run_dir: Path) -> None:
    """Print the final train/val/test metrics, fit time, throughput and where the run lives.

    Args:
        console: where to print.
        metrics: what ``metrics.json`` holds.
        run_dir: the run directory; the report path is printed if a report is there.
    """
    from rich.table import Table
    from rich.text import Text

    rows = final_table(metrics.final)
    if rows:
        header, body = rows
        _heading(console, f"{metrics.name}: final metrics")
        table = Table()
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in body:
            table.add_row(Text(row[0]), *row[1:])
        console.print(table)
    if metrics.task:
        reason = f" — {metrics.task_reason}" if metrics.task_reason else ""
        console.print(Text(f"task: {metrics.task}{reason}"))
    for warning in metrics.warnings:
        console.print(Text.assemble(("warning: ", "bold yellow"), warning))

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    epochs = metrics.epochs_run
    if epochs is not None:
        note = f" (best {metrics.best_epoch})" if metrics.best_epoch is not None else ""
        note += ", stopped early" if metrics.stopped_early else ""
        facts.add_row("epochs", Text(f"{epochs}{note}"))
    fit_seconds = metrics.timing.fit_seconds
    if fit_seconds is not None:
        facts.add_row("fit time", f"{fit_seconds:.1f} s")
    speed = metrics.throughput.train_samples_per_second
    if speed is not None:
        facts.add_row("throughput", f"{speed:,.0f} samples/s")
    if metrics.precise_bn is not None:
        facts.add_row("batch norm", precise_bn_note(metrics.precise_bn))
    run_dir = Path(run_dir)
    facts.add_row("run dir", Text(str(run_dir)))
    reports = [run_dir / "report.html", run_dir / "report.md"]
    report = next((path for path in reports if path.is_file()), None)
    if report is not None:
        facts.add_row("report", Text(str(report)))
    console.print(facts)


def _per_class_table(summary: dict[str, Any]):
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("class")
    for column in ("precision", "recall", "f1", "support"):
        table.add_column(column, justify="right")
    per_class = summary["per_class"]
    for i, row in enumerate(per_class):
        table.add_row(
            Text(str(row["class"])), format_value(row["precision"]), format_value(row["recall"]),
            format_value(row["f1"]), format_value(row["support"]),
            end_section=i == len(per_class) - 1,
        )
    total = sum(row["support"] for row in per_class)
    for label in ("macro", "weighted"):
        avg = summary.get(label) or {}
        table.add_row(f"{label} avg", format_value(avg.get("precision")),
                      format_value(avg.get("recall")), format_value(avg.get("f1")),
                      format_value(total), style="italic")
    return table


def _fitting_confusion(console: Console, summary: dict[str, Any]):
    """The confusion matrix table in the roomiest layout that fits the console, or None."""
    from rich.measure import Measurement

    k = len(summary["class_names"])
    if k > _MAX_MATRIX_CLASSES:
        return None
    # Measured against an unbounded width: measuring at console width is clamped to it.
    unbounded = console.options.update_width(1_000_000)
    layouts = [True] if k > _COMPACT_CLASSES else [False, True]
    for compact in layouts:
        table = _confusion(summary, compact)
        if Measurement.get(console, unbounded, table).maximum <= console.width:
            return table
    return None


def _confusion(summary: dict[str, Any], compact: bool):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    names = [str(n) for n in summary["class_names"]]
    table = Table(
        box=None if compact else box.SIMPLE_HEAD, padding=(0, 0, 0, 1) if compact else (0, 2),
        pad_edge=False,
    )
    # Compact mode labels columns by index so the matrix fits; rows keep "index name".
    table.add_column("true \\ pred" if not compact else "", no_wrap=True)
    for j, name in enumerate(names):
        table.add_column(str(j) if compact else Text(name), justify="right", no_wrap=True)
    for i, row in enumerate(summary["confusion_matrix"]):
        label = Text(f"{i} {names[i]}" if compact else names[i])
        cells = [
            Text(str(count), style="bold green" if i == j else ("red" if count else "dim"))
            for j, count in enumerate(row)
        ]
        table.add_row(label, *cells)
    return table


def _top_confusions(summary: dict[str, Any]):
    from rich.table import Table
    from rich.text import Text

    names = [str(n) for n in summary["class_names"]]
    matrix = summary["confusion_matrix"]
    pairs = sorted(
        ((count, i, j) for i, row in enumerate(matrix) for j, count in enumerate(row)
         if i != j and count),
        key=lambda pair: (-pair[0], pair[1], pair[2]),
    )[:_TOP_CONFUSIONS]
    table = Table()
    table.add_column("true")
    table.add_column("predicted")
    table.add_column("count", justify="right")
    for count, i, j in pairs:
        table.add_row(Text(names[i]), Text(names[j]), str(count))
    return table


def _heading(console: Console, text: str) -> None:
    # Not a table title: rich wraps a title to the table's width, which is often narrow.
    from rich.text import Text

    console.print(Text(text, style="bold"))
