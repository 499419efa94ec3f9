"""The README lists exactly what the registries hold: sources, preprocessing steps, models, metrics."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


@pytest.mark.parametrize("kind", readme_tables.KINDS)
def test_the_readme_table_matches_the_registry(kind):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme_tables.current(text, kind)
    assert block is not None, f"README.md lacks the generated {kind} table"
    assert block == readme_tables.render(kind), f"the README's {kind} table is stale: run `make readme`"
