"""Where ``fmtrain predict`` writes: csv, jsonl or npz, a batch at a time.

Each writer fills ``<output>.partial`` and renames it on close, so a failed prediction never leaves
half a file nor replaces an earlier one.
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from fmtrain.predict import OutputReading, Predictions


def columns(reading: OutputReading, values: int = 1, files: bool = False) -> list[str]:
    """The csv header: ``row`` (and ``file`` for a folder of loose files), then ``class``, ``class_id``,
    ``probability`` and ``p_<class>`` per class, or ``value`` (``value_<i>`` for several regression outputs)."""
    first = ["row", "file"] if files else ["row"]
    if reading.task == "classification":
        return [*first, "class", "class_id", "probability", *(f"p_{name}" for name in reading.class_names or [])]
    return [*first, "value"] if values == 1 else [*first, *(f"value_{i}" for i in range(values))]


def _number(value) -> float:
    return float(f"{float(value):.9g}")  # float32 round-trips in 9 significant digits


class _Writer:
    """Writes batches to ``<output>.partial`` and renames it to ``output`` on close, so a failed
    prediction never leaves half a file (nor replaces an earlier one)."""

    def __init__(self, output: Path, reading: OutputReading, files: list[str] | None = None):
        self.output = output
        self.partial = output.with_name(output.name + ".partial")
        self.reading = reading
        self.files = files

    def write(self, batch: Predictions) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def close(self) -> None:
        self._finish()
        os.replace(self.partial, self.output)

    def discard(self) -> None:
        self._finish()
        self.partial.unlink(missing_ok=True)


class _CsvWriter(_Writer):
    def __init__(self, output: Path, reading: OutputReading, files: list[str] | None = None):
        super().__init__(output, reading, files)
        self.file = self.partial.open("w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.file)
        self.header_written = False

    def write(self, batch: Predictions) -> None:
        if not self.header_written:
            width = batch.values.shape[1] if batch.values is not None else 1
            self.csv.writerow(columns(self.reading, width, files=self.files is not None))
            self.header_written = True
        names = self.reading.class_names
        for i, row in enumerate(batch.rows.tolist()):
            first = [row] if self.files is None else [row, self.files[row]]
            if batch.class_ids is not None:
                k = int(batch.class_ids[i])
                probs = [_number(p) for p in batch.probabilities[i]]
                self.csv.writerow([*first, names[k], k, probs[k], *probs])
            else:
                self.csv.writerow([*first, *(_number(v) for v in batch.values[i])])

    def _finish(self) -> None:
        self.file.close()


class _JsonlWriter(_Writer):
    def __init__(self, output: Path, reading: OutputReading, files: list[str] | None = None):
        super().__init__(output, reading, files)
        self.file = self.partial.open("w", encoding="utf-8")

    def write(self, batch: Predictions) -> None:
        names = self.reading.class_names
        lines = []
        for i, row in enumerate(batch.rows.tolist()):
            if batch.class_ids is not None:
                k = int(batch.class_ids[i])
                probabilities = {n: _number(p) for n, p in zip(names, batch.probabilities[i], strict=True)}
                record: dict[str, Any] = {"row": row, "class": names[k], "class_id": k, "probabilities": probabilities}
            else:
                values = [_number(v) for v in batch.values[i]]
                record = {"row": row, "value": values[0]} if len(values) == 1 else {"row": row, "values": values}
            if self.files is not None:
                record = {"row": row, "file": self.files[row], **record}
            lines.append(json.dumps(record))
        self.file.write("\n".join(lines) + "\n")

    def _finish(self) -> None:
        self.file.close()


class _NpzWriter(_Writer):
    """Each array goes to a memory-mapped .npy beside the output, filled batch by batch; close
    zips them into the .npz (``row``, ``class_id``, ``probabilities``, ``class_names`` or ``values``)."""

    def __init__(self, output: Path, reading: OutputReading, n: int, files: list[str] | None = None):
        super().__init__(output, reading, files)
        self.n = n
        self.arrays: dict[str, Any] = {}
        self.parts: list[Path] = []

    def _array(self, name: str, like: np.ndarray):
        import numpy as np

        if name not in self.arrays:
            part = self.output.with_name(f"{self.output.name}.{name}.partial.npy")
            self.parts.append(part)
            self.arrays[name] = np.lib.format.open_memmap(part, mode="w+", dtype=like.dtype,
                                                          shape=(self.n, *like.shape[1:]))
        return self.arrays[name]

    def write(self, batch: Predictions) -> None:
        start, stop = int(batch.rows[0]), int(batch.rows[-1]) + 1
        for name in ("rows", "class_ids", "probabilities", "values"):
            values = getattr(batch, name)
            if values is not None:
                self._array({"rows": "row", "class_ids": "class_id"}.get(name, name), values)[start:stop] = values

    def close(self) -> None:
        import numpy as np

        with zipfile.ZipFile(self.partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for (name, array), part in zip(self.arrays.items(), self.parts, strict=True):
                array.flush()
                archive.write(part, f"{name}.npy")
            for name, strings in (("class_names", self.reading.class_names), ("file", self.files)):
                if strings is not None:
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                        np.lib.format.write_array(handle, np.asarray(strings, dtype=str))
        super().close()

    def _finish(self) -> None:
        self.arrays.clear()  # drops the memory maps
        for part in self.parts:
            part.unlink(missing_ok=True)


def open_writer(output: Path, n: int, reading: OutputReading, files: list[str] | None = None) -> _Writer:
    """A writer for ``output`` by its suffix (checked by :func:`check_output`); ``files`` names each row."""
    suffix = output.suffix.lower()
    if suffix == ".csv":
        return _CsvWriter(output, reading, files)
    if suffix == ".jsonl":
        return _JsonlWriter(output, reading, files)
    return _NpzWriter(output, reading, n, files)
