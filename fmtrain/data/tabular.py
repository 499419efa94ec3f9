"""Reading csv and npz files, one-hot encoding csv columns, and typing label cells (:mod:`.labels` encodes them).

Every problem a user can fix becomes a one-line :class:`DataError` that names the file and
line (csv) or array (npz), what was found and what would be right.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from fmtrain.data.encoding import EncoderState
from fmtrain.errors import DataError
from fmtrain.registry import did_you_mean

# --------------------------------------------------------------------------- files


def resolve_path(path: str | None, source: str, expected: str, *, folder: bool = False) -> Path:
    """Return ``data.path`` as an absolute path to an existing file (or folder, with ``folder``).

    Args:
        path: ``cfg.path`` as written in the config.
        source: the source name, for the message.
        expected: what the path should be, e.g. ``"a .csv file with a header row"``.
        folder: expect a folder instead of a file.

    Raises:
        DataError: ``path`` is unset, missing, or the other kind.
    """
    if not path:
        raise DataError(f"data.path is required for source '{source}'; set it to {expected}")
    resolved = Path(path).expanduser().resolve()
    kind, other = ("folder", "file") if folder else ("file", "folder")
    if not resolved.exists():
        raise DataError(f"data.path: {kind} not found: {resolved}; set data.path to {expected}")
    if resolved.is_dir() != folder:
        raise DataError(f"data.path: {resolved} is a {other}; set data.path to {expected}")
    return resolved


@dataclass(frozen=True)
class CsvRows:
    """The cells of a csv file: ``rows[i]`` came from line ``lines[i]`` of ``path``."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, name: str, key: str) -> list[str]:
        """The stripped cells of column ``name``; ``key`` is the config key that named it.

        Raises:
            DataError: no such column (with the closest name), or an empty cell.
        """
        if name not in self.header:
            raise DataError(
                f"{self.path}: {key} names column '{name}', which is not in the header"
                f"{did_you_mean(name, self.header)}; columns are {_quoted(self.header)}"
            )
        j = self.header.index(name)
        cells = [row[j] for row in self.rows]
        for i, cell in enumerate(cells):
            if cell == "":
                raise DataError(
                    f"{self.path}:{self.lines[i]}: column '{name}' is empty; "
                    "fill in a value or remove the row (fmtrain does not impute)"
                )
        return cells


def read_csv(path: Path) -> CsvRows:
    """Read a comma-separated file with a header row; cells are whitespace-stripped.

    Raises:
        DataError: unreadable file, no header, duplicate column names, no data rows
            or a row whose number of values differs from the header's.
    """
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet exports put before the header.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header: list[str] | None = None
            rows, lines = [], []
            for record in reader:
                if not record or all(not cell.strip() for cell in record):
                    continue
                cells = [cell.strip() for cell in record]
                if header is None:
                    header = cells
                    continue
                if len(cells) != len(header):
                    raise DataError(
                        f"{path}:{reader.line_num}: {len(cells)} value{'s' * (len(cells) != 1)} but the header has "
                        f"{len(header)} columns; every row needs one value per column"
                    )
                rows.append(cells)
                lines.append(reader.line_num)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); save the csv as UTF-8") from err
    except csv.Error as err:
        raise DataError(f"{path}: not a readable csv file ({err})") from err
    if header is None:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}: column '{name}' appears twice in the header; column names must be unique")
        seen.add(name)
    if not rows:
        raise DataError(f"{path}: only a header row, no data rows")
    return CsvRows(path, header, rows, lines)


def is_number(cell: str) -> bool:
    """Whether a csv cell is a finite number."""
    return _number(cell) is not None


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    # nan/inf parse as floats but would poison training; treat them as missing.
    return value if math.isfinite(value) else None


def parse_numeric(table: CsvRows, name: str, cells: list[str]) -> np.ndarray:
    """Parse a numeric csv column as float64.

    Raises:
        DataError: a cell is not a finite number (naming its line and column).
    """
    import numpy as np

    values = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        number = _number(cell)
        if number is None:
            raise DataError(
                f"{table.path}:{table.lines[i]}: column '{name}' should be a number but is '{cell}'; "
                f"fix the value, or list '{name}' in data.categorical to one-hot encode it"
            )
        values[i] = number
    return values


def looks_numeric(cells: list[str]) -> bool:
    """Whether most cells are numbers: such a column is numeric, and its other cells are typos.

    A column whose values are not *all* numeric is still read as numbers when most are,
    because one stray ``n/a`` would otherwise silently turn it into a one-hot column with
    a category per distinct number.
    """
    return 2 * sum(is_number(cell) for cell in cells) > len(cells)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file (``allow_pickle=False``).

    Raises:
        DataError: not an npz file, or it holds pickled (object) arrays.
    """
    import numpy as np

    # np.load would read a text file as pickled data and an .npy as one bare array.
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path}: not an .npz archive; save the arrays with np.savez(path, x=..., y=...)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(
            f"{path}: not a readable .npz file ({err}); save the arrays with np.savez(path, x=..., y=...)"
        ) from err


def require_arrays(arrays: dict[str, np.ndarray], path: Path, names: list[str], key: str) -> None:
    """Raise a DataError listing the arrays found when any of ``names`` is missing."""
    for name in names:
        if name not in arrays:
            raise DataError(
                f"{path}: no array '{name}' ({key}){did_you_mean(name, arrays)}; "
                f"arrays found: {_quoted(arrays) or 'none'}; expected {_quoted(names)}"
            )


def _quoted(names) -> str:
    return ", ".join(f"'{n}'" for n in names)


# --------------------------------------------------------------------------- features


class ColumnEncoder:
    """Turns csv columns into one float32 matrix: numbers pass through, categories are one-hot.

    ``categories`` maps each categorical column to its vocabulary; ``None`` means not yet
    fitted. A value outside the vocabulary becomes an all-zero one-hot block, so data seen
    at eval time never shifts the columns the model was trained on.
    """

    def __init__(self, columns: list[str], categorical: list[str], categories: dict[str, list[str]] | None = None):
        self.columns = list(columns)
        self.categorical = [c for c in columns if c in set(categorical)]
        self.categories = categories

    def fitted(self, table: dict[str, np.ndarray]) -> ColumnEncoder:
        """Return an encoder whose vocabularies come from ``table`` (the training rows), or self if fitted."""
        if self.categories is not None:
            return self
        vocab = {name: sorted(set(table[name].tolist())) for name in self.categorical}
        return ColumnEncoder(self.columns, self.categorical, vocab)

    def transform(self, table: dict[str, np.ndarray]) -> np.ndarray:
        """Encode ``table`` (column name → values) as a float32 matrix, one row per example."""
        import numpy as np

        assert self.categories is not None, "fit the encoder first"
        blocks = []
        for name in self.columns:
            values = table[name]
            if name in self.categories:
                vocab = np.asarray(self.categories[name], dtype=str)
                blocks.append(values.astype(str)[:, None] == vocab[None, :])
            else:
                blocks.append(values[:, None])
        return np.concatenate(blocks, axis=1).astype(np.float32)

    @property
    def feature_names(self) -> list[str]:
        """One name per output column; a one-hot column is ``"column=value"``."""
        assert self.categories is not None, "fit the encoder first"
        names = []
        for name in self.columns:
            if name in self.categories:
                names.extend(f"{name}={value}" for value in self.categories[name])
            else:
                names.append(name)
        return names

    @property
    def vocab_sizes(self) -> None:
        """One-hot columns are floats, not ids."""
        return None

    def add_to(self, state: EncoderState) -> EncoderState:
        """``state`` with the columns and their categories; :func:`fmtrain.data.build` takes it back."""
        assert self.categories is not None, "fit the encoder first"
        return replace(state, columns=list(self.columns), categories=dict(self.categories))


# --------------------------------------------------------------------------- labels


def typed_cells(cells: list[str]) -> np.ndarray:
    """csv label cells as int64 when all are integers, float64 when all are numbers, else str."""
    import numpy as np

    try:
        return np.array([int(c) for c in cells], dtype=np.int64)
    except ValueError:
        pass
    numbers = [_number(c) for c in cells]
    if all(n is not None for n in numbers):
        return np.array(numbers, dtype=np.float64)
    return np.array(cells, dtype=str)
