"""What the report says about a run's data: class balance per split, rows shared between the
training split and the others, classes missing from a split. Computed at fit time from the
splits (the run directory keeps no data) and saved as ``data_stats.json``."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmtrain.data import Split, Splits

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitStats:
    rows: int
    class_counts: list[int] | None = None
    """Rows per class id (index i counts class i); None unless the labels are single class ids."""


@dataclass(frozen=True)
class DataStats:
    """``data_stats.json``."""

    class_names: list[str] | None
    splits: dict[str, SplitStats]
    """By split name, in train, val, test order; absent splits are left out."""
    in_train: dict[str, int] = field(default_factory=dict)
    """Rows of val/test whose inputs equal a training row's (hashed), by split: a leak when not zero."""

    def missing_classes(self) -> list[str]:
        """One warning per split that lacks a class the others have (its metrics cannot show it)."""
        if not self.class_names:
            return []
        warnings = []
        for name, stats in self.splits.items():
            if stats.class_counts is None:
                continue
            missing = [self.class_names[i] for i, count in enumerate(stats.class_counts) if count == 0]
            if missing:
                shown = ", ".join(repr(c) for c in missing[:10]) + (" …" if len(missing) > 10 else "")
                classes = "class" if len(missing) == 1 else "classes"
                warnings.append(f"the {name} split has no rows of {len(missing)} {classes}: {shown}")
        return warnings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataStats:
        """Read back :meth:`to_dict`'s output; unknown keys (a newer fmtrain's) are ignored.

        Raises:
            KeyError, TypeError: not data statistics.
        """
        splits = {name: SplitStats(rows=int(s["rows"]), class_counts=s.get("class_counts"))
                  for name, s in data["splits"].items()}
        return cls(class_names=data.get("class_names"), splits=splits, in_train=dict(data.get("in_train") or {}))


def data_stats(splits: Splits) -> DataStats:
    """Class counts of every split and the val/test rows that also occur in the training split."""
    info = splits.info
    present = {name: getattr(splits, name) for name in SPLITS if getattr(splits, name) is not None}
    n_classes = info.num_classes if info.task == "classification" and info.label_shape == () else None
    stats = {name: SplitStats(rows=len(split), class_counts=_class_counts(split, n_classes))
             for name, split in present.items()}
    train_rows = set(row_hashes(splits.train.x))
    in_train = {name: sum(h in train_rows for h in row_hashes(split.x))
                for name, split in present.items() if name != "train"}
    return DataStats(class_names=info.class_names if n_classes else None, splits=stats, in_train=in_train)


def row_hashes(x: Any) -> list[bytes]:
    """A 16-byte digest of each example's inputs (every named input of a dict, in name order)."""
    import numpy as np

    parts = [x[name] for name in sorted(x)] if isinstance(x, dict) else [x]
    n = len(parts[0])
    digests = [hashlib.blake2b(digest_size=16) for _ in range(n)]
    for array in parts:
        array = np.asarray(array)
        if array.dtype.kind == "O":  # text: the objects' bytes would be pointers
            rows = (repr(row.tolist() if isinstance(row, np.ndarray) else row).encode() for row in array)
        else:
            flat = np.ascontiguousarray(array.reshape(n, -1))
            rows = (row.tobytes() for row in flat)
        for digest, row in zip(digests, rows, strict=True):
            digest.update(row)
            digest.update(b"\0")
    return [d.digest() for d in digests]


def _class_counts(split: Split, n_classes: int | None) -> list[int] | None:
    import numpy as np

    if n_classes is None:
        return None
    y = np.asarray(split.y).astype(np.int64, copy=False)
    return np.bincount(y[(y >= 0) & (y < n_classes)], minlength=n_classes).tolist()
