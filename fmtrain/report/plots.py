"""PNG plots for the report: training curves and confusion matrices."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

from fmtrain.errors import RunDirError
from fmtrain.fileio import atomic_write_bytes

_DPI = 100
# history.csv columns that are bookkeeping, not metrics.
_NOT_METRICS = {"epoch", "lr", "seconds"}


def read_history(history_csv: Path) -> dict[str, list[float]]:
    """Read ``history.csv`` into ``{column: values}``; empty cells become NaN.

    Raises:
        RunDirError: the file has no header, no ``epoch`` column, or a non-numeric cell.
    """
    history_csv = Path(history_csv)
    with history_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise RunDirError(f"{history_csv}: expected a header starting with 'epoch'")
        columns: dict[str, list[float]] = {name: [] for name in reader.fieldnames}
        for row in reader:
            for name in columns:
                cell = (row.get(name) or "").strip()
                try:
                    columns[name].append(float(cell) if cell else math.nan)
                except ValueError:
                    raise RunDirError(
                        f"{history_csv}, line {reader.line_num}: column {name!r} "
                        f"holds {cell!r}, expected a number"
                    ) from None
    return columns


def plot_history(history_csv: Path, out_dir: Path) -> list[Path]:
    """Plot one PNG per metric in ``history.csv`` (train and, if present, val curves vs epoch), and the
    learning rate when the history has an ``lr`` column.

    Args:
        history_csv: the run's ``history.csv``.
        out_dir: folder for ``history_<metric>.png`` files (created if missing).

    Returns:
        The written paths in column order (``loss`` first, ``history_lr.png`` last); none if no
        epoch finished.
    """
    from matplotlib.ticker import MaxNLocator

    columns = read_history(history_csv)
    epochs = columns["epoch"]
    if not epochs:
        return []
    metrics = history_metrics(columns)
    written = []
    for metric in metrics:
        fig = _figure((6.0, 3.6))
        ax = fig.subplots()
        ax.plot(epochs, columns[metric], marker="o", markersize=3, label="train")
        if f"val_{metric}" in columns:
            ax.plot(epochs, columns[f"val_{metric}"], marker="o", markersize=3, label="val")
        ax.set_title(f"{metric} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        # Integer epoch ticks: a fractional epoch axis reads as a bug.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        fig.tight_layout()
        written.append(_save(fig, Path(out_dir) / f"history_{slug(metric)}.png"))
    if "lr" in columns:
        written.append(_plot_learning_rate(epochs, columns["lr"], Path(out_dir) / "history_lr.png"))
    return written


def history_metrics(columns: dict[str, list[float]]) -> list[str]:
    """The metrics of a history (``loss`` first, as in the file), without their ``val_`` twins."""
    return [name for name in columns if name not in _NOT_METRICS and not name.startswith("val_")]


def plot_overlay(curves: list[tuple[str, dict[str, list[float]]]], metric: str, out_path: Path) -> Path:
    """One plot of ``metric`` per epoch for several runs: a colour per run, train solid, val dashed.

    Args:
        curves: ``(run label, read_history columns)`` per run; runs without the metric are skipped.
        metric: a history column (``lr`` too); its ``val_`` twin is drawn where present.
        out_path: the PNG to write.

    Returns:
        ``out_path``.
    """
    from matplotlib.ticker import MaxNLocator

    fig = _figure((7.0, 4.0))
    ax = fig.subplots()
    for index, (label, columns) in enumerate(curves):
        colour = f"C{index % 10}"
        if metric in columns:
            ax.plot(columns["epoch"], columns[metric], marker="o", markersize=3, color=colour,
                    label=label if metric == "lr" else f"{label} train")
        if f"val_{metric}" in columns:
            ax.plot(columns["epoch"], columns[f"val_{metric}"], marker="o", markersize=3, color=colour,
                    linestyle="--", label=f"{label} val")
    title = "learning rate" if metric == "lr" else metric
    ax.set_title(f"{title} per epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel(title)
    if metric == "lr":
        _scale_learning_rate(ax, [v for _, columns in curves for v in columns.get("lr", [])])
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(out_path))


def _plot_learning_rate(epochs: list[float], lr: list[float], out_path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig = _figure((6.0, 3.6))
    ax = fig.subplots()
    ax.plot(epochs, lr, marker="o", markersize=3, color="C2")
    ax.set_title("learning rate per epoch (at the epoch's end)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    _scale_learning_rate(ax, lr)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, out_path)


def _scale_learning_rate(ax, values: list[float]) -> None:
    # A decay over orders of magnitude is a flat line at zero on a linear axis.
    positive = [v for v in values if math.isfinite(v) and v > 0]
    if positive and len(positive) == len([v for v in values if math.isfinite(v)]) \
            and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    elif positive and max(positive) == min(positive):  # a constant rate: a flat line, not ±1e-7 of noise
        ax.set_ylim(0, 2 * positive[0])


def plot_confusion_matrix(summary: dict[str, Any], out_path: Path) -> Path:
    """Draw the confusion matrix of a ``classification_summary`` as an annotated heatmap.

    Colour is the fraction of each true class (so small classes stay visible); the
    numbers are raw counts (zeros left blank above 12 classes). Labels stay readable up
    to about 20 classes; beyond 30 the counts are left out and only the colours remain.

    Returns:
        ``out_path``.
    """
    matrix = summary["confusion_matrix"]
    names = [str(n) for n in summary["class_names"]]
    k = len(names)
    row_totals = [sum(row) or 1 for row in matrix]
    fractions = [[count / total for count in row] for row, total in zip(matrix, row_totals, strict=True)]

    side = min(3.5 + 0.35 * k, 11.0)
    fig = _figure((side + 1.0, side))
    ax = fig.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    fontsize = 9 if k <= 12 else 8
    ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor", fontsize=fontsize)
    ax.set_yticklabels(names, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (counts)")
    if k <= 30:
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                # In a large matrix a sea of zeros hides the few cells that matter.
                if count == 0 and k > 12:
                    continue
                colour = "white" if fractions[i][j] > 0.5 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=colour,
                        fontsize=fontsize)
    fig.tight_layout()
    return _save(fig, Path(out_path))


def _figure(size: tuple[float, float]):
    # A bare Figure renders through the Agg canvas without pyplot, so no display is needed
    # and a caller's interactive backend (e.g. in a notebook) is left untouched.
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=_DPI)


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    # No "Software" stamp, so re-running the report on the same run gives identical bytes.
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path


def slug(name: str) -> str:
    """``name`` made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "metric"
