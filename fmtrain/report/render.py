"""What the report pages share: tables of formatted strings, value formatting, Markdown and HTML output."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


def format_value(value: Any) -> str:
    """Format a metric or a setting for a human: 4 significant digits, thousands separators."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isfinite(value) and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def md_cell(text: str) -> str:
    # Pipes would split the cell and raw "<" could be taken as HTML by a Markdown renderer.
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def md_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) for h in table.header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in table.rows]
    return lines + [""]


def render_html(template: str, **context: Any) -> str:
    """Render one of ``fmtrain/report/templates`` with autoescaping on."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fmtrain.report", "templates"),
        # The template's ".j2" suffix defeats select_autoescape, so switch it on outright.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(template).render(**context)
