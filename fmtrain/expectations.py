"""``--expect 'test.accuracy>=0.95'``: thresholds that decide a CI run's exit code."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from fmtrain.errors import ConfigError, ExpectationFailed
from fmtrain.registry import did_you_mean

_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_PATTERN = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
SPLITS = ("train", "val", "test")
# The epoch line and history.csv print validation metrics as val_accuracy; --expect takes that form too.
_PREFIXED = re.compile(r"^(train|val|test|data)_(\w+)$")
# `fmtrain eval --data FILE` reports its results as the split "data".
EVAL_DATA_SPLIT = "data"


@dataclass(frozen=True)
class Expectation:
    """One threshold: ``split.metric op value`` (split may be left out)."""

    split: str | None
    metric: str
    op: str
    value: float
    written: str | None = field(default=None, compare=False)
    """The key as the user wrote it (``val_accuracy`` or ``val.accuracy``), for messages."""

    def __str__(self) -> str:
        key = self.written or (f"{self.split}.{self.metric}" if self.split else self.metric)
        return f"{key}{self.op}{self.value:g}"


def parse_expectation(text: str, splits: tuple[str, ...] = SPLITS) -> Expectation:
    """Parse ``[split.]metric OP number`` or ``split_metric OP number``; OP is one of >=, <=, >, <, ==.

    ``val_accuracy`` (as the epoch line prints it) means ``val.accuracy``; likewise ``train_`` and ``test_``.
    ``splits`` are the names allowed (``eval --data`` adds ``data``).

    Raises:
        ConfigError: the text does not have that form.
    """
    match = _PATTERN.match(text)
    if not match:
        raise ConfigError(f"--expect '{text}': expected METRIC OP NUMBER, e.g. 'test.accuracy>=0.95' or 'loss<0.5'")
    key, op, number = match.groups()
    split, _, metric = key.rpartition(".")
    if split and split not in splits:
        raise ConfigError(
            f"--expect '{text}': unknown split '{split}'{did_you_mean(split, splits)}; "
            f"use {', '.join(splits[:-1])} or {splits[-1]}"
        )
    prefixed = _PREFIXED.match(key)
    if not split and prefixed and prefixed.group(1) in splits:
        split, metric = prefixed.groups()
    return Expectation(split or None, metric, op, float(number), written=key)


def default_split(splits: Iterable[str]) -> str:
    """The split an expectation without one is checked on: test, else val, else train."""
    present = set(splits)
    return next(name for name in ("test", "val", "train") if name in present)


def check_expectation_names(expectations: list[Expectation], *, metric_names: list[str], splits: list[str]) -> None:
    """Check, before training, that every expectation names a split and a metric the run will have.

    Args:
        expectations: parsed ``--expect`` thresholds.
        metric_names: what evaluation reports: ``loss`` and each metric's name.
        splits: the splits the data has (train, and val/test when present).

    Raises:
        ConfigError: one line per expectation naming a missing split or an unknown metric.
    """
    problems = []
    for expectation in expectations:
        split = expectation.split or default_split(splits)
        if split not in splits:
            problems.append(f"--expect {expectation}: this run has no {split} split ({_why_absent(split)}); "
                            f"it has {', '.join(s for s in SPLITS if s in splits)}")
        elif expectation.metric not in metric_names:
            problems.append(
                f"--expect {expectation}: no metric '{expectation.metric}' in {split}"
                f"{did_you_mean(expectation.metric, metric_names)}; available: {', '.join(metric_names)}"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def _why_absent(split: str) -> str:
    if split == "val":
        return "data.validation_split is 0"
    if split == "test":
        return "data.test_split is 0 and the source has no test split"
    return "no training examples"


def check_expectations(expectations: list[Expectation], results: dict[str, dict[str, float] | None],
                       default_split: str) -> list[str]:
    """Compare each expectation with ``results[split][metric]``; return one line per check.

    Raises:
        ConfigError: an expectation names a metric or split the run did not produce.
        ExpectationFailed: one or more thresholds were missed (all lines in the message).
    """
    lines, failed = [], False
    for expectation in expectations:
        split = expectation.split or default_split
        values = results.get(split)
        if not values:
            raise ConfigError(f"--expect {expectation}: this run has no {split} split to check")
        if expectation.metric not in values:
            raise ConfigError(
                f"--expect {expectation}: no metric '{expectation.metric}' in {split}"
                f"{did_you_mean(expectation.metric, values)}; available: {', '.join(values)}"
            )
        actual = values[expectation.metric]
        ok = _OPERATORS[expectation.op](actual, expectation.value)
        failed |= not ok
        lines.append(f"{'ok  ' if ok else 'FAIL'} {split}.{expectation.metric} = {actual:.4f} "
                     f"(expected {expectation.op}{expectation.value:g})")
    if failed:
        raise ExpectationFailed("expectation missed:\n" + "\n".join(lines))
    return lines
