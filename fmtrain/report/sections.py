"""The report's data, model and environment sections, formatted from the run's files."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from fmtrain.data_stats import DataStats
from fmtrain.report.details import ModelSummary
from fmtrain.report.render import Table, format_value

# Beyond this many classes the balance table lists the rarest ones in training only.
MAX_CLASS_ROWS = 40
# Beyond this many layers the HTML folds the layer table away (the Markdown lists them all).
FOLD_LAYERS = 25


@dataclass
class DataSection:
    splits: Table
    """Rows per split (and, with data_stats.json, rows whose inputs also occur in training)."""
    classes: Table | None = None
    """Class balance: count and share of each class per split."""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Said at the top of the report too: classes missing from a split, rows leaked from training."""


@dataclass
class ModelSection:
    summary: str
    layers: Table
    folded: bool
    """Many layers: the HTML shows the table on request."""


def data_section(stats: DataStats | None, rows: dict[str, int]) -> DataSection | None:
    """From ``data_stats.json``, or — for runs made before it — the rows per split in metrics.json."""
    if stats is None:
        if not rows:
            return None
        return DataSection(Table(["split", "rows"], [[k, format_value(v)] for k, v in rows.items()]))
    section = DataSection(Table(["split", "rows", "inputs also in train"], [
        [name, format_value(s.rows), "—" if name == "train" else _share(stats.in_train.get(name), s.rows)]
        for name, s in stats.splits.items()
    ]))
    for name, leaked in stats.in_train.items():
        if leaked:
            total = stats.splits[name].rows
            section.warnings.append(
                f"{leaked:,} of {total:,} {name} rows ({leaked / max(total, 1):.1%}) have exactly the inputs of a "
                f"training row, so {name} metrics partly measure memory; deduplicate the data before splitting")
    section.warnings += stats.missing_classes()
    counted = {name: s.class_counts for name, s in stats.splits.items() if s.class_counts is not None}
    if stats.class_names and counted:
        order = list(range(len(stats.class_names)))
        if len(order) > MAX_CLASS_ROWS and "train" in counted:
            order = sorted(order, key=lambda i: counted["train"][i])[:MAX_CLASS_ROWS]
            section.notes.append(f"{len(stats.class_names):,} classes: the {MAX_CLASS_ROWS} rarest in training shown")
        section.classes = Table(["class", *counted], [
            [stats.class_names[i], *(_count_share(counts[i], sum(counts)) for counts in counted.values())]
            for i in order
        ])
    return section


def model_section(summary: ModelSummary | None) -> ModelSection | None:
    if summary is None:
        return None
    parts = [f"{summary.trainable_params:,} trainable", f"{summary.frozen_params:,} frozen"]
    if summary.state_params:
        parts.append(f"{summary.state_params:,} statistics (normalization, batch-norm averages)")
    text = f"{summary.total_params:,} parameters: {', '.join(parts)}; {len(summary.layers)} layers"
    layers = Table(["layer", "type", "output shape", "params", "trains"], [
        [row.name, row.kind, row.output_shape or "—", format_value(row.params), "yes" if row.trainable else "frozen"]
        for row in summary.layers
    ])
    return ModelSection(text, layers, folded=len(summary.layers) > FOLD_LAYERS)


def environment_table(environment: dict[str, Any] | None) -> Table | None:
    """environment.json: versions, devices, platform and the command line that made the run."""
    if not environment:
        return None
    rows = []
    for key, value in environment.items():
        if key == "schema_version":
            continue
        if key == "argv" and isinstance(value, list):
            value = shlex.join(str(v) for v in value)
        rows.append([key, format_value(value)])
    return Table(["", "value"], rows)


def _share(part: int | None, total: int) -> str:
    if part is None:
        return "—"
    return f"{part:,} ({part / max(total, 1):.1%})" if part else "0"


def _count_share(count: int, total: int) -> str:
    return f"{count:,} ({count / max(total, 1):.1%})"
