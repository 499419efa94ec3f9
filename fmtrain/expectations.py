"""``--expect 'test.accuracy>=0.95'``: thresholds that decide a CI run's exit code."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from fmtrain.errors import ConfigError, ExpectationFailed
from fmtrain.registry import did_you_mean

_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_PATTERN = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Expectation:
    """One threshold: ``split.metric op value`` (split may be left out)."""

    split: str | None
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        key = f"{self.split}.{self.metric}" if self.split else self.metric
        return f"{key}{self.op}{self.value:g}"


def parse_expectation(text: str) -> Expectation:
    """Parse ``[split.]metric OP number``; OP is one of >=, <=, >, <, ==.

    Raises:
        ConfigError: the text does not have that form.
    """
    match = _PATTERN.match(text)
    if not match:
        raise ConfigError(f"--expect '{text}': expected METRIC OP NUMBER, e.g. 'test.accuracy>=0.95' or 'loss<0.5'")
    key, op, number = match.groups()
    split, _, metric = key.rpartition(".")
    if split and split not in SPLITS:
        raise ConfigError(f"--expect '{text}': unknown split '{split}'{did_you_mean(split, SPLITS)}; use train, val or test")
    return Expectation(split or None, metric, op, float(number))


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
        lines.append(f"{'ok  ' if ok else 'FAIL'} {split}.{expectation.metric} = {actual:.4f} (expected {expectation.op}{expectation.value:g})")
    if failed:
        raise ExpectationFailed("expectation missed:\n" + "\n".join(lines))
    return lines
