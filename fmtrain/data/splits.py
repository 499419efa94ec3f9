"""Which rows go to train, validation and test: seeded, optionally stratified, never empty.

A plan holds row indices (or slices, so that Keras-style "last" splits of a source's own
training set stay views instead of copies of, say, 150 MB of CIFAR-10 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fmtrain.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from fmtrain.data.sources import SourceConfig

    Index = np.ndarray | slice  # rows, as positions or a slice (a view, not a copy)

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


def plan_splits(cfg: SourceConfig, n: int, *, seed: int, labels: np.ndarray | None = None,
                own_test: bool = False, users: np.ndarray | None = None,
                times: np.ndarray | None = None) -> SplitPlan:
    """Decide which of ``n`` rows are train, validation and test.

    Without ``own_test``, ``cfg.test_split`` of the rows are drawn at random as test
    (stratified by ``labels`` when given) and the training rows come back shuffled, because
    files such as iris are sorted by class. Validation is then the last
    ``cfg.validation_split`` of the training rows (``split: last``, exactly as Keras's
    ``fit(validation_split=...)``) or a seeded draw (``split: random``, stratified when
    ``cfg.stratify`` and ``labels`` is given). ``split: leave_last_per_user`` is
    :func:`leave_last_per_user` instead.

    Args:
        cfg: the data config (test_split, validation_split, split, stratify).
        n: number of rows.
        seed: same seed, same plan.
        labels: class ids of the rows for stratification; None for regression.
        own_test: the source brings its own test split; rows keep their order.
        users: the user of each row (interactions), for ``split: leave_last_per_user``.
        times: when each row happened, for ``split: leave_last_per_user`` (default: row order).

    Raises:
        DataError: a split would be empty, naming the key to change.
    """
    import numpy as np

    if cfg.split == "leave_last_per_user":
        if users is None:
            raise DataError(f"data.split leave_last_per_user needs user interactions, and source "
                            f"'{cfg.source}' has no users; use split: last or random")
        return leave_last_per_user(users, times, test=cfg.test_split > 0 and not own_test,
                                   validation=cfg.validation_split > 0)
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
    import numpy as np

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
    import numpy as np

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


def leave_last_per_user(users: np.ndarray, times: np.ndarray | None, *, test: bool,
                        validation: bool) -> SplitPlan:
    """Hold out each user's latest rows: the last one for test, the one before for validation.

    A user keeps at least one training row: with both splits on, a user needs 3 rows to give
    one to validation and 2 to give one to test. Ties in ``times`` go by row order. Every
    split keeps the rows in file order.

    Args:
        users: the user of each row.
        times: sortable numbers, one per row; None means row order.
        test, validation: whether each split is wanted.

    Raises:
        DataError: no user has enough rows to give one to a wanted split.
    """
    import numpy as np

    n = len(users)
    rows = np.arange(n)
    _, user_ids = np.unique(np.asarray(users), return_inverse=True)
    order = np.lexsort((rows, rows if times is None else np.asarray(times), user_ids))
    sorted_users = user_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, n])
    per_row_count = np.repeat(counts, counts)
    from_end = np.repeat(starts + counts, counts) - 1 - np.arange(n)  # 0 for a user's latest row
    held = 0
    parts: dict[str, np.ndarray | None] = {"test": None, "val": None}
    taken = np.zeros(n, dtype=bool)
    for name, wanted, key in (("test", test, "data.test_split"), ("val", validation, "data.validation_split")):
        if not wanted:
            continue
        chosen = order[(from_end == held) & (per_row_count >= held + 2)]
        if not chosen.size:
            raise DataError(
                f"{key}: split leave_last_per_user holds out a user's {'latest' if held == 0 else 'second latest'} "
                f"row, but no user has {held + 2} or more rows; use split: random or set {key}: 0"
            )
        parts[name] = np.sort(chosen)
        taken[chosen] = True
        held += 1
    return SplitPlan(np.flatnonzero(~taken), parts["val"], parts["test"])
