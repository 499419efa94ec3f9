"""The comparison page of several runs: the config keys that differ, final metrics side by side,
and each metric's learning curves overlaid. Built from the run directories alone."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmtrain.config.flat import flatten_config
from fmtrain.config.yaml_marks import read_yaml
from fmtrain.errors import ConfigError, RunDirError
from fmtrain.fileio import atomic_write_text
from fmtrain.report.document import read_metrics
from fmtrain.report.plots import history_metrics, plot_overlay, read_history, slug
from fmtrain.report.render import Table, format_value, md_cell, md_table, render_html
from fmtrain.runs import RunMetrics

_SPLITS = ("train", "val", "test")
_MISSING = "—"
_UNSET = object()
"""A config key a run does not have."""


@dataclass(frozen=True)
class RunSummary:
    """One run of a comparison, as read from its directory."""

    label: str
    """Short, unique among the compared runs: the shortest tail of the path that tells them apart."""
    path: Path
    metrics: RunMetrics
    config: dict[str, Any]
    """The resolved config.yaml as dotted keys (``optimizer.learning_rate``); empty without one."""
    history: dict[str, list[float]]
    """history.csv's columns; empty without one."""


@dataclass
class Comparison:
    """Everything the comparison page shows, formatted."""

    title: str
    runs: Table
    config_diff: Table | None
    same_keys: int
    """Config keys every run sets to the same value (not shown)."""
    final: Table | None
    plots: list[tuple[str, str]]
    """``(metric, image path relative to the page)``."""


def write_comparison(run_dirs: list[Path], output: Path) -> Path:
    """Write a side-by-side page of ``run_dirs`` to ``output`` (``.html`` or ``.md``), with its
    plots in ``<output stem>_plots/`` beside it.

    Returns:
        ``output``.

    Raises:
        ConfigError: fewer than two runs, a run given twice, or an output suffix other than .html/.md.
        RunDirError: a run directory or its ``metrics.json`` is missing or unreadable.
    """
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm", ".md"):
        raise ConfigError(f"--output {output}: expected a .html or .md file")
    resolved = [Path(p).resolve() for p in run_dirs]
    if len(resolved) < 2:
        raise ConfigError("a comparison needs at least two run directories")
    twice = next((p for i, p in enumerate(resolved) if p in resolved[:i]), None)
    if twice is not None:
        raise ConfigError(f"{twice}: given twice; name each run directory once")
    runs = read_runs(run_dirs)
    plots_dir = output.parent / f"{output.stem}_plots"
    comparison = build_comparison(runs, plots_dir, output.parent)
    if output.suffix.lower() == ".md":
        atomic_write_text(output, _markdown(comparison))
    else:
        atomic_write_text(output, render_html("compare.html.j2", c=comparison))
    return output


def read_runs(run_dirs: list[Path]) -> list[RunSummary]:
    """Read each run's metrics, config and history; label each by the shortest distinct path tail.

    Raises:
        RunDirError: a directory or its ``metrics.json`` is missing or unreadable.
    """
    paths = [Path(p) for p in run_dirs]
    for path in paths:
        if not path.is_dir():
            raise RunDirError(f"{path}: run directory not found")
    labels = _labels([p.resolve() for p in paths])
    runs = []
    for label, path in zip(labels, paths, strict=True):
        history_csv = path / "history.csv"
        runs.append(RunSummary(
            label=label, path=path, metrics=read_metrics(path / "metrics.json"),
            config=flatten_config(_read_config(path / "config.yaml")),
            history=read_history(history_csv) if history_csv.is_file() else {},
        ))
    return runs


def config_differences(runs: list[RunSummary]) -> tuple[list[str], int]:
    """The dotted keys whose value is not the same in every run (in first-seen order), and how many are."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.config if k not in keys]
    differ = [k for k in keys if len({_canonical(run.config.get(k, _UNSET)) for run in runs}) > 1]
    return differ, len(keys) - len(differ)


def build_comparison(runs: list[RunSummary], plots_dir: Path, page_dir: Path) -> Comparison:
    """The page's tables, and its overlaid plots written into ``plots_dir``."""
    labels = [run.label for run in runs]
    rows = [[run.label, run.metrics.name + (" (interrupted)" if run.metrics.interrupted else ""),
             str(run.path), format_value(run.metrics.epochs_run), format_value(run.metrics.best_epoch),
             _seconds(run.metrics.timing.fit_seconds)] for run in runs]
    runs_table = Table(["run", "name", "directory", "epochs", "best epoch", "training time"], rows)

    differ, same = config_differences(runs)
    config_diff = Table(["config key", *labels], [
        [key, *(_config_value(run.config.get(key, _UNSET)) for run in runs)] for key in differ
    ]) if differ else None

    final_rows = []
    for split in _splits(runs):
        names: list[str] = []
        for run in runs:
            names += [n for n in run.metrics.final.get(split) or {} if n not in names]
        names.sort(key=lambda n: n != "loss")
        for name in names:
            final_rows.append([f"{split} {name}", *(
                format_value((run.metrics.final.get(split) or {}).get(name)) for run in runs)])
    final = Table(["metric", *labels], final_rows) if final_rows else None

    plots = []
    curves = [(run.label, run.history) for run in runs if run.history.get("epoch")]
    if curves:
        metrics: list[str] = []
        for _, columns in curves:
            metrics += [m for m in history_metrics(columns) if m not in metrics]
        if any("lr" in columns for _, columns in curves):
            metrics.append("lr")
        for metric in metrics:
            path = plot_overlay(curves, metric, plots_dir / f"{slug(metric)}.png")
            shown = "learning rate" if metric == "lr" else metric
            plots.append((shown, Path(os.path.relpath(path, page_dir)).as_posix()))
    names = sorted({run.metrics.name for run in runs})
    return Comparison(title=f"Comparison of {len(runs)} runs: {', '.join(names)}", runs=runs_table,
                      config_diff=config_diff, same_keys=same, final=final, plots=plots)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data, _ = read_yaml(path)
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None
    return data if isinstance(data, dict) else {}


def _labels(paths: list[Path]) -> list[str]:
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def _splits(runs: list[RunSummary]) -> list[str]:
    found = [s for s in _SPLITS if any(run.metrics.final.get(s) for run in runs)]
    for run in runs:
        found += [s for s, v in run.metrics.final.items() if v and s not in found]
    return found


def _canonical(value: Any) -> str:
    return "(not set)" if value is _UNSET else json.dumps(value, sort_keys=True, default=str)


def _config_value(value: Any) -> str:
    if value is _UNSET:
        return "(not set)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"  # as the YAML says
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _seconds(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.1f} s"


def _markdown(c: Comparison) -> str:
    out = [f"# {md_cell(c.title)}", "", "## Runs", "", *md_table(c.runs)]
    if c.config_diff:
        note = f"Only the keys that differ; {c.same_keys} more are the same in every run."
        out += ["## Config differences", "", note, "", *md_table(c.config_diff)]
    else:
        out += ["## Config differences", "", f"None: all {c.same_keys} keys are the same in every run.", ""]
    if c.final:
        out += ["## Final metrics", "", *md_table(c.final)]
    if c.plots:
        out += ["## Learning curves", ""]
        out += [f"![{md_cell(metric)} per epoch]({src})" for metric, src in c.plots] + [""]
    return "\n".join(out)
