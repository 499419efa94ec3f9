"""Where ``fmtrain predict`` writes: csv, jsonl or npz, a batch at a time.

Each writer fills ``<output>.partial`` and renames it on close, so a failed prediction never leaves
half a file nor replaces an earlier one.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
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
        self.expected: int | None = None
        """Rows the caller will write, when known."""
        self.written = 0

    def write(self, batch: Predictions) -> None:
        """Append one batch's rows (batches come in row order)."""
        self._write(batch)
        self.written += len(batch.rows)

    def _write(self, batch: Predictions) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def close(self) -> None:
        if self.expected is not None and self.written != self.expected:  # a caller's bug, never bad input
            raise RuntimeError(f"{self.partial}: {self.written} rows written, {self.expected} expected")
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

    def _write(self, batch: Predictions) -> None:
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

    def _write(self, batch: Predictions) -> None:
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
    """Each array's rows are appended to a raw file beside the output, batch by batch (so the row count
    need not be known up front, as for streamed shards); close writes each as an .npy into the .npz
    (``row``, ``class_id``, ``probabilities``, ``class_names`` or ``values``)."""

    CHUNK = 1 << 20
    """Bytes copied at a time from a part file into the archive."""

    def __init__(self, output: Path, reading: OutputReading, files: list[str] | None = None):
        super().__init__(output, reading, files)
        self.parts: dict[str, _Part] = {}

    def _write(self, batch: Predictions) -> None:
        import numpy as np

        for name in ("rows", "class_ids", "probabilities", "values"):
            values = getattr(batch, name)
            if values is None:
                continue
            key = {"rows": "row", "class_ids": "class_id"}.get(name, name)
            if key not in self.parts:
                path = self.output.with_name(f"{self.output.name}.{key}.partial")
                self.parts[key] = _Part(path, path.open("wb"), values.dtype, values.shape[1:])
            part = self.parts[key]
            part.handle.write(np.ascontiguousarray(values, dtype=part.dtype).tobytes())
            part.rows += len(values)

    def close(self) -> None:
        import numpy as np

        with zipfile.ZipFile(self.partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, part in self.parts.items():
                part.handle.close()
                header = {"descr": np.lib.format.dtype_to_descr(part.dtype), "fortran_order": False,
                          "shape": (part.rows, *part.shape)}
                with archive.open(f"{name}.npy", "w", force_zip64=True) as handle, part.path.open("rb") as rows:
                    np.lib.format.write_array_header_2_0(handle, header)
                    shutil.copyfileobj(rows, handle, self.CHUNK)
            for name, strings in (("class_names", self.reading.class_names), ("file", self.files)):
                if strings is not None:
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                        np.lib.format.write_array(handle, np.asarray(strings, dtype=str))
        super().close()

    def _finish(self) -> None:
        for part in self.parts.values():
            part.handle.close()
            part.path.unlink(missing_ok=True)


@dataclass
class _Part:
    """One array of an .npz being written: its raw rows so far, in a file."""

    path: Path
    handle: BinaryIO
    dtype: Any
    shape: tuple[int, ...]
    """The shape of one row."""
    rows: int = 0


def open_writer(output: Path, n: int | None, reading: OutputReading, files: list[str] | None = None) -> _Writer:
    """A writer for ``output`` by its suffix (checked by :func:`~fmtrain.predict_options.check_output`).

    Args:
        output: a .csv, .jsonl or .npz file; written as ``<output>.partial`` until :meth:`_Writer.close`.
        n: how many rows will be written, when known (close checks it); None for a stream.
        reading: the task and class names, for the header.
        files: the file each row came from, for a folder of loose files.

    Returns:
        A writer taking one batch of :class:`~fmtrain.predict.Predictions` after another, in row order.
    """
    suffix = output.suffix.lower()
    kind = _CsvWriter if suffix == ".csv" else _JsonlWriter if suffix == ".jsonl" else _NpzWriter
    writer = kind(output, reading, files)
    writer.expected = n
    return writer
