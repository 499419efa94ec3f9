"""Commands beyond the core ones in ``fmtrain/cli.py``, one module each.

Each module defines ``register(app)``, which adds its command(s) to the Typer app, and imports
nothing heavy at module level (``fmtrain --help`` must stay instant).
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    """Add every module's commands, in module-name order (after the core commands)."""
    for module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"fmtrain.commands.{module}").register(app)
