"""What ``fmtrain tune`` is asked to do and what it answers, without Optuna or the training machinery.

The command module imports this at start-up (for ``--help``, the ``--metric``/``--direction`` checks
and the summary table) and the search itself (:mod:`fmtrain.tune`) only when it runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmtrain.engine.callbacks import monitor_sign
from fmtrain.errors import ConfigError
from fmtrain.expectations import Expectation
from fmtrain.registry import did_you_mean

STUDY_DB = "study.db"
BEST_CONFIG = "best.yaml"
_SPLIT_PREFIX = re.compile(r"^(train|val|test)_(\w+)$")


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by: an epoch-line name (``val_loss``, ``val_accuracy``, ``loss``)."""

    metric: str
    direction: str
    split: str
    name: str
    """The metric within the split, as ``metrics.json`` → ``final`` names it."""

    @classmethod
    def parse(cls, metric: str, direction: str | None) -> Objective:
        """``val_accuracy`` → the val split's accuracy; a name without a prefix is the training split's,
        as on the epoch line. ``direction`` None: maximize accuracy-like names, minimize the rest.

        Raises:
            ConfigError: a test-split metric (tuning on it leaks the test set) or a bad direction.
        """
        match = _SPLIT_PREFIX.match(metric)
        split, name = match.groups() if match else ("train", metric)
        if split == "test":
            raise ConfigError(f"--metric {metric}: tuning on the test split leaks it into the choice; "
                              f"use val_{name} (and data.validation_split > 0)")
        if direction is None:
            direction = "minimize" if monitor_sign(metric, "auto") > 0 else "maximize"
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"--direction {direction}: expected minimize or maximize"
                              f"{did_you_mean(direction, ('minimize', 'maximize'))}")
        return cls(metric, direction, split, name)

    def expectation(self) -> Expectation:
        """An expectation that always holds, so ``fit`` checks the metric's name before training
        (``expectations.check_expectation_names``) and nothing is written for a misspelt one."""
        return Expectation(self.split, self.name, ">=", -math.inf, written=self.metric)


@dataclass
class TuneOptions:
    """Command-line choices of ``fmtrain tune``."""

    study_dir: Path
    trials: int
    """The study's total of finished trials (complete, pruned or diverged) to reach."""
    objective: Objective
    overrides: list[str] = field(default_factory=list)
    """``--set`` values applied to every trial, before the searched keys."""
    device: str = "auto"
    quiet: bool = True
    """No per-epoch lines from the trials' training."""
    verbose: bool = False
    pruner: Any = None
    """An ``optuna.pruners.BasePruner``; None: Optuna's median pruner."""
    prune: bool = True
    report: Callable[[str], None] = print
    """Receives one line per trial."""


@dataclass(frozen=True)
class TrialRow:
    """One trial of the study, for the summary table."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_dir: str | None
    epochs: int | None


@dataclass(frozen=True)
class TuneOutcome:
    study_dir: Path
    trials: list[TrialRow]
    best: TrialRow | None
    best_config: Path | None
    ran: int
    """Trials this process ran."""
