"""Which rows go to train, validation and test: seeded, optionally stratified, never empty.

A plan holds row indices (or slices, so that Keras-style "last" splits of a source's own
training set stay views instead of copies of, say, 150 MB of CIFAR-10 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import numpy as np

from fmtrain.errors import DataError

if TYPE_CHECKING:
    from fmtrain.config.schema import DataConfig

Index = Union[np.ndarray, slice]

# Separate random streams, so changing validation_split never changes the test rows.
_TEST_STREAM, _VALIDATION_STREAM = 1, 2


@dataclass(frozen=True)
class SplitPlan:
    """Row indices of each split; ``test`` is None when the source keeps its own or test_split is 0."""

    train: Index
    val: Index | None
    test: Index | None


def take(x: np.ndarray | dict[str, np.ndarray], index: Index):
    """Rows ``index`` of an array, or of every array in a dict of named arrays."""
    if isinstance(x, dict):
        return {name: values[index] for name, values in x.items()}
    return x[index]


def plan_splits(cfg: DataConfig, n: int, *, seed: int, labels: np.ndarray | None = None,
                own_test: bool = False) -> SplitPlan:
    """Decide which of ``n`` rows are train, validation and test.

    Without ``own_test``, ``cfg.test_split`` of the rows are drawn at random as test
    (stratified by ``labels`` when given) and the training rows come back shuffled, because
    files such as iris are sorted by class. Validation is then the last
    ``cfg.validation_split`` of the training rows (``split: last``, exactly as Keras's
    ``fit(validation_split=...)``) or a seeded draw (``split: random``, stratified when
    ``cfg.stratify`` and ``labels`` is given).

    Args:
        cfg: the data config (test_split, validation_split, split, stratify).
        n: number of rows.
        seed: same seed, same plan.
        labels: class ids of the rows for stratification; None for regression.
        own_test: the source brings its own test split; rows keep their order.

    Raises:
        DataError: a split would be empty, naming the key to change.
    """
    if own_test:
        pool: Index = slice(0, n)
        test = None
        size = n
    else:
        rng = np.random.default_rng([_TEST_STREAM, seed % 2**63])
        order = rng.permutation(n)
        test = None
        if cfg.test_split > 0:
            n_test = _held_out(n, cfg.test_split, "data.test_split", "test", "rows")
            order, test = _draw(order, n_test, rng, labels)
        pool, size = order, len(order)

    if cfg.validation_split == 0:
        return SplitPlan(pool, None, test)
    n_val = _held_out(size, cfg.validation_split, "data.validation_split", "validation", "training rows")
    if cfg.split == "last":
        split_at = size - n_val
        if isinstance(pool, slice):
            return SplitPlan(slice(0, split_at), slice(split_at, size), test)
        return SplitPlan(pool[:split_at], pool[split_at:], test)
    rng = np.random.default_rng([_VALIDATION_STREAM, seed % 2**63])
    candidates = np.arange(n) if isinstance(pool, slice) else pool
    train, val = _draw(candidates, n_val, rng, labels if cfg.stratify else None)
    return SplitPlan(train, val, test)


def _held_out(n: int, fraction: float, key: str, what: str, rows: str) -> int:
    # Keras's rule: split_at = int(n * (1 - validation_split)).
    held = n - int(n * (1 - fraction))
    if held == 0:
        raise DataError(
            f"{key} {fraction:g} of {n} {rows} leaves an empty {what} split; "
            f"use at least 1/{n} (about {1 / n:.3g}), or 0 for no {what} split"
        )
    if held == n:
        raise DataError(f"{key} {fraction:g} of {n} {rows} leaves no training rows; use a smaller fraction")
    return held


def _draw(candidates: np.ndarray, count: int, rng: np.random.Generator,
          labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``candidates`` into (kept, drawn) with ``count`` drawn; both keep candidate order."""
    if labels is None:
        chosen = rng.choice(len(candidates), size=count, replace=False)
    else:
        chosen = _stratified_positions(labels[candidates], count, rng)
    mask = np.zeros(len(candidates), dtype=bool)
    mask[chosen] = True
    return candidates[~mask], candidates[mask]


def _stratified_positions(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    # Each class gets its share of `count`, rounded down; the rows left over go to the classes
    # that lost the largest fractions (ties broken at random), as scikit-learn does.
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    quota = sizes * count / len(labels)
    take = np.floor(quota).astype(int)
    leftover = count - int(take.sum())
    if leftover:
        remainder = quota - take + rng.random(len(classes)) * 1e-9
        take[np.argsort(-remainder)[:leftover]] += 1
    chosen = [rng.choice(np.flatnonzero(inverse == k), size=take[k], replace=False)
              for k in range(len(classes)) if take[k]]
    return np.concatenate(chosen) if chosen else np.empty(0, dtype=int)
