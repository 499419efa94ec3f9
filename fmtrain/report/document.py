"""report.md and report.html for a finished run, built from the run directory alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fmtrain.errors import RunDirError
from fmtrain.fileio import atomic_write_text
from fmtrain.report.details import read_data_stats, read_model_summary
from fmtrain.report.plots import plot_confusion_matrix, plot_history
from fmtrain.report.render import Table, format_value, md_cell, md_table, render_html
from fmtrain.report.sections import DataSection, ModelSection, data_section, environment_table, model_section
from fmtrain.runs import PreciseBNInfo, RunMetrics

_SPLITS = ("train", "val", "test")


@dataclass
class _Eval:
    title: str
    metrics: Table
    per_class: Table | None = None
    confusion_src: str | None = None


@dataclass
class _Report:
    """Everything the two renderers show, already formatted as strings."""

    name: str
    task: str
    task_reason: str | None
    """Why the task is what it is, said next to it."""
    status: str | None
    """Said above everything else: the run was interrupted, and how to continue it."""
    warnings: list[str]
    """Said right after the status: results the user must not miss (metrics.json ``warnings``)."""
    headline_split: str | None
    headline: list[tuple[str, str]]
    final: Table | None
    overview: Table
    data: DataSection | None
    model: ModelSection | None
    history_plots: list[tuple[str, str]]
    evals: list[_Eval] = field(default_factory=list)
    environment: Table | None = None
    config_text: str | None = None


def write_report(run_dir: Path) -> Path:
    """Write ``plots/*.png``, ``report.md`` and ``report.html`` into a run directory.

    Only files in the run directory are read; optional ones (history, eval results,
    environment, config) that are missing leave their section out. Re-running overwrites.

    Args:
        run_dir: a run directory written by ``fmtrain fit``.

    Returns:
        The path of ``report.md``.

    Raises:
        RunDirError: ``run_dir`` or its ``metrics.json`` is missing, or a file is unreadable.
    """

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: run directory not found")
    metrics = read_metrics(run_dir / "metrics.json")
    environment = _read_json(run_dir / "environment.json", required=False)
    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else None

    plots_dir = run_dir / "plots"
    history_plots = []
    if (run_dir / "history.csv").is_file():
        for path in plot_history(run_dir / "history.csv", plots_dir):
            history_plots.append((path.stem.removeprefix("history_"), _rel(path, run_dir)))

    evals = []
    for path in _eval_files(run_dir):
        result = _read_json(path, required=True)
        # The plot is named after the file, not the JSON's "split", which could hold a "/".
        stem = path.stem.removeprefix("eval-")
        split = str(result.get("split") or stem)
        confusion_src = None
        if result.get("classification"):
            out = plots_dir / f"confusion_{stem}.png"
            confusion_src = _rel(plot_confusion_matrix(result["classification"], out), run_dir)
        evals.append(_eval_section(split, result, confusion_src))

    data_info = _read_json(run_dir / "data_info.json", required=False)
    report = _build(metrics, history_plots, evals, environment, config_text, data_info, run_dir)
    report.data = data_section(read_data_stats(run_dir), metrics.data)
    report.model = model_section(read_model_summary(run_dir))
    if report.data:
        report.warnings += report.data.warnings
    md_path = run_dir / "report.md"
    atomic_write_text(md_path, _markdown(report))
    atomic_write_text(run_dir / "report.html", _html(report))
    return md_path


def final_table(final: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Rows of final metrics (loss first), one column per split that has results."""
    splits = [s for s in _SPLITS if isinstance(final.get(s), dict)]
    splits += [s for s, v in final.items() if s not in _SPLITS and isinstance(v, dict)]
    if not splits:
        return None
    names: list[str] = []
    for split in splits:
        names += [n for n in final[split] if n not in names]
    names.sort(key=lambda n: n != "loss")
    rows = [[n] + [format_value(final[s].get(n)) for s in splits] for n in names]
    return ["metric", *splits], rows


def precise_bn_note(info: PreciseBNInfo) -> str:
    """One line on the batch-norm statistics recomputed after training."""
    seconds = f", {info.seconds:.2g} s" if info.seconds is not None else ""
    layers = "layer" if info.layers == 1 else "layers"
    return (f"statistics of {info.layers} {layers} recomputed on {info.samples:,} training rows "
            f"({info.batches} batches of {info.batch_size}{seconds})")


def read_metrics(path: Path) -> RunMetrics:
    try:
        return RunMetrics.model_validate(_read_json(path, required=True))
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise RunDirError(f"{path}: {where}: {problem['msg']}") from None


def _read_json(path: Path, *, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise RunDirError(f"{path}: not found; is this a finished fmtrain run directory?")
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path}: cannot read ({err})") from None
    except json.JSONDecodeError as err:
        raise RunDirError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(payload, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    return payload


def _eval_files(run_dir: Path) -> list[Path]:
    order = {"test": 0, "val": 1, "train": 2}
    files = run_dir.glob("eval-*.json")
    return sorted(files, key=lambda p: (order.get(p.stem.removeprefix("eval-"), 3), p.name))


def _rel(path: Path, run_dir: Path) -> str:
    return path.relative_to(run_dir).as_posix()


def _eval_section(split: str, result: dict[str, Any], confusion_src: str | None) -> _Eval:
    n = result.get("n_samples")
    title = f"Evaluation on {split}" + (f" ({format_value(n)} samples)" if n is not None else "")
    metrics = [[k, format_value(v)] for k, v in (result.get("metrics") or {}).items()]
    section = _Eval(title, Table(["metric", "value"], metrics))
    summary = result.get("classification")
    if summary:
        per_class = summary["per_class"]
        rows = [_score_row(str(c["class"]), c, c["support"]) for c in per_class]
        total = sum(c["support"] for c in per_class)
        rows += [_score_row(f"{avg} avg", summary.get(avg) or {}, total)
                 for avg in ("macro", "weighted")]
        section.per_class = Table(["class", "precision", "recall", "f1", "support"], rows)
        section.confusion_src = confusion_src
    return section


def _score_row(label: str, scores: dict[str, Any], support: int) -> list[str]:
    return [label, *(format_value(scores.get(k)) for k in ("precision", "recall", "f1")),
            format_value(support)]


def _status(metrics: RunMetrics, run_dir: Path) -> str | None:
    where = metrics.interrupted
    if where is None:
        return None
    at = f" at epoch {where.epoch}, step {where.step}" if where.epoch is not None else ""
    return (f"Interrupted{at}, before training finished: these are the epochs done so far. "
            f"Continue with: fmtrain fit --resume {run_dir}")


def _config_name(config_text: str | None) -> str | None:

    try:
        config = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        return None
    return str(config["name"]) if isinstance(config, dict) and config.get("name") else None


def _build(metrics: RunMetrics, history_plots, evals, environment, config_text, data_info,
           run_dir: Path) -> _Report:
    final = metrics.final
    headline_split = next((s for s in ("test", "val", "train") if final.get(s)), None)
    headline = [(k, format_value(v)) for k, v in (final.get(headline_split) or {}).items()]
    table = final_table(final)

    overview = []
    if metrics.epochs_run is not None:
        for key in ("epochs_run", "best_epoch", "stopped_early", "resumed_from_step"):
            overview.append([key.replace("_", " "), format_value(getattr(metrics, key))])
    groups = {"timing": metrics.timing.model_dump(), "throughput": metrics.throughput.model_dump(),
              "compile": metrics.compile.model_dump(), "transfer": metrics.transfer or {}}
    for group, values in groups.items():
        for key, value in values.items():
            if value is None:
                continue
            label = key.replace("_", " ")
            if group == "transfer" and key in ("trainable", "frozen"):
                label += " layers"
            overview.append([label, format_value(value) if value != [] else "none"])
    if metrics.precise_bn is not None:
        overview.append(["batch norm", precise_bn_note(metrics.precise_bn)])
    for key, value in metrics.params.items():
        overview.append([f"{key} params", format_value(value)])

    return _Report(
        # An interrupted run's metrics.json did not get that far: its config names it.
        name=(metrics.interrupted and _config_name(config_text)) or metrics.name,
        task=metrics.task or (data_info or {}).get("task") or "unknown",
        task_reason=metrics.task_reason or (data_info or {}).get("task_reason"),
        status=_status(metrics, run_dir),
        warnings=list(metrics.warnings),
        headline_split=headline_split,
        headline=headline,
        final=Table(*table) if table else None,
        overview=Table(["", "value"], overview),
        data=None,
        model=None,
        history_plots=history_plots,
        evals=evals,
        environment=environment_table(environment),
        config_text=config_text,
    )


def _markdown(r: _Report) -> str:
    reason = f" — {md_cell(r.task_reason)}" if r.task_reason else ""
    out = [f"# {md_cell(r.name)}", "", f"Task: **{md_cell(r.task)}**{reason}", ""]
    if r.status:
        out += [f"> **{md_cell(r.status)}**", ""]
    for warning in r.warnings:
        out += [f"> **Warning:** {md_cell(warning)}", ""]
    if r.headline:
        parts = ", ".join(f"{md_cell(k)} **{v}**" for k, v in r.headline)
        out += [f"Final {r.headline_split}: {parts}", ""]
    if r.final:
        out += ["## Final metrics", "", *md_table(r.final)]
    if r.overview.rows:
        out += ["## Training", "", *md_table(r.overview)]
    if r.data:
        out += ["## Data", "", *md_table(r.data.splits)]
        out += [f"_{md_cell(note)}_" for note in r.data.notes] + ([""] if r.data.notes else [])
        if r.data.classes:
            out += ["### Class balance", "", *md_table(r.data.classes)]
    if r.model:
        out += ["## Model", "", md_cell(r.model.summary), "", *md_table(r.model.layers)]
    if r.history_plots:
        out += ["## History", ""]
        out += [f"![{md_cell(name)} per epoch]({src})" for name, src in r.history_plots] + [""]
    for ev in r.evals:
        out += [f"## {md_cell(ev.title)}", "", *md_table(ev.metrics)]
        if ev.per_class:
            out += ["### Per class", "", *md_table(ev.per_class)]
        if ev.confusion_src:
            out += [f"![confusion matrix]({ev.confusion_src})", ""]
    if r.environment:
        out += ["## Environment", "", *md_table(r.environment)]
    if r.config_text is not None:
        fence = "````" if "```" in r.config_text else "```"
        out += ["## Resolved config", "", f"{fence}yaml", r.config_text.rstrip("\n"), fence, ""]
    return "\n".join(out)


def _html(r: _Report) -> str:
    return render_html("report.html.j2", r=r)
