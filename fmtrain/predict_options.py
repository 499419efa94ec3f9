"""What ``fmtrain predict`` is asked to do, checked before anything heavy is imported.

The command module imports this at start-up (for ``--help`` and the option checks) and the
predicting machinery (:mod:`fmtrain.predict`, which pulls in numpy and the engine) only when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmtrain.errors import ConfigError

OUTPUT_SUFFIXES = (".csv", ".jsonl", ".npz")


@dataclass
class PredictOptions:
    output: Path | None = None
    """Where the predictions go (.csv, .jsonl or .npz); None: only a summary is printed."""
    batch_size: int = 256
    """Examples per model call (and per write)."""
    device: str = "auto"
    unsafe: bool = False
    verbose: bool = False


def check_output(output: Path | None) -> None:
    """Refuse an output file fmtrain cannot write before anything is loaded.

    Args:
        output: the ``--output`` path, or None (a summary only).

    Raises:
        ConfigError: a suffix other than .csv, .jsonl or .npz, or a missing parent folder.
    """
    if output is None:
        return
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"--output {output}: expected a .csv, .jsonl or .npz file")
    if not output.parent.is_dir():
        raise ConfigError(f"--output {output}: folder {output.parent} does not exist; create it first")


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size below 1.

    Args:
        batch_size: the ``--batch-size`` value.

    Raises:
        ConfigError: ``batch_size`` is below 1.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: expected at least 1")
