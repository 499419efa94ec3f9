"""GitHub Actions' job summary: with ``--junit-xml``, when ``GITHUB_STEP_SUMMARY`` names a file, a
Markdown section (the metrics table and each check's result) is appended to it."""

from __future__ import annotations

import os
from pathlib import Path

from fmtrain.integrations.junit import CheckResult, write_junit_xml

ENV = "GITHUB_STEP_SUMMARY"
_ICON = {"passed": "✅ pass", "failed": "❌ FAIL", "error": "⚠️ error", "skipped": "⏭️ skipped"}


def step_summary_path() -> Path | None:
    """The file GitHub Actions reads the step summary from; None outside a workflow."""
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def render_summary(title: str, metrics: dict[str, dict[str, float] | None] | None,
                   results: list[CheckResult]) -> str:
    """One Markdown section: ``### title``, a table of loss and metrics per split, a table of checks."""
    lines = [f"### {_cell(title)}", ""]
    rows = {split: values for split, values in (metrics or {}).items() if values}
    if rows:
        columns: list[str] = []
        for values in rows.values():
            columns += [name for name in values if name not in columns]
        lines += ["| split | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {split} | " + " | ".join(_number(values.get(c)) for c in columns) + " |"
                  for split, values in rows.items()]
        lines.append("")
    if results:
        lines += ["| check | result | measured | threshold | details |", "|---|---|---|---|---|"]
        lines += [f"| {_cell(r.group)}: `{_cell(r.name)}` | {_ICON[r.outcome]} | {_number(r.measured)} | "
                  f"{_cell(r.threshold or '')} | {_cell(r.message)} |" for r in results]
        lines.append("")
    return "\n".join(lines) + "\n"


def append_step_summary(path: Path, title: str, metrics: dict[str, dict[str, float] | None] | None,
                        results: list[CheckResult]) -> None:
    """Append :func:`render_summary` to ``path`` (other steps' sections stay)."""
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(render_summary(title, metrics, results))


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def write_ci_reports(junit_xml: Path, suite: str, metrics: dict[str, dict[str, float] | None] | None,
                     results: list[CheckResult]) -> None:
    """``--junit-xml``: the XML file, and inside a GitHub Actions step its summary section too."""
    write_junit_xml(junit_xml, suite, results)
    summary = step_summary_path()
    if summary is not None:
        append_step_summary(summary, suite, metrics, results)
