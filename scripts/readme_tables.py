"""The README's tables of what a config can name, rendered from fmtrain's registries.

`make readme` rewrites the blocks between `<!-- generated: KIND -->` and `<!-- end: KIND -->`
in README.md; tests/test_readme_tables.py fails when the README and the registries differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
KINDS = ("sources", "preprocess", "models", "metrics")
HEADINGS = {"sources": "`data.source`", "preprocess": "`preprocess` step", "models": "`model.type`",
            "metrics": "`metrics` name"}


# The key that picks the variant is read by every variant, obviously.
DISCRIMINATORS = ("source", "type")


def _fields(entry) -> list[str]:
    return list(entry.params.model_fields) if entry.params is not None else []


def render(kind: str) -> str:
    """One markdown table: each registered name, its one-line summary and the keys it reads.

    Keys that every entry reads (a source's split keys, a model's transfer keys) are listed
    once below the table instead of in every row.
    """
    from fmtrain.cli import _registries

    entries = _registries()[kind].entries()
    key_lists = [_fields(entry) for entry in entries]
    common = [key for key in key_lists[0] if all(key in keys for keys in key_lists)] if len(entries) > 1 else []
    shown_common = [key for key in common if key not in DISCRIMINATORS]
    rows = [f"| {HEADINGS[kind]} | what it is | keys |", "|---|---|---|"]
    for entry, keys in zip(entries, key_lists, strict=True):
        summary = entry.summary.replace("|", "\\|")
        rows.append(f"| `{entry.name}` | {summary} | {', '.join(f'`{k}`' for k in keys if k not in common)} |")
    if shown_common:
        rows += ["", f"Every {HEADINGS[kind]} also reads: {', '.join(f'`{k}`' for k in shown_common)}."]
    return "\n".join(rows)


def _block(kind: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated: {kind} -->)(.*?)(<!-- end: {kind} -->)", re.S)


def current(text: str, kind: str) -> str | None:
    """The README's block for ``kind``, or None when it has none."""
    match = _block(kind).search(text)
    return match.group(2).strip("\n") if match else None


def main() -> int:
    text = README.read_text(encoding="utf-8")
    for kind in KINDS:
        if current(text, kind) is None:
            print(f"README.md has no <!-- generated: {kind} --> block", file=sys.stderr)
            return 1
        text = _block(kind).sub(lambda m, k=kind: m.group(1) + "\n" + render(k) + "\n" + m.group(3), text)
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
