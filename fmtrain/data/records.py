"""Multi-input records: ``data.inputs`` turns csv columns or npz arrays into named model inputs.

Each kind of input is one entry of ``x``, named by its kind:

- ``numeric``: columns (arrays) → float32 of shape (n, k);
- ``category``: columns (1-D arrays) → raw strings of shape (n, k), turned into int32 ids by an
  :class:`~fmtrain.data.ids.IdEncoder` fitted on the training rows (0 = unseen);
- ``text``: one column (a 1-D string array) → Python strings of shape (n,);
- ``image``: one npz array of shape (n, h, w[, c]) → uint8 kept as is, other numbers as float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

from fmtrain.data import tabular
from fmtrain.data.encoding import EncoderState
from fmtrain.data.ids import IdEncoder
from fmtrain.errors import DataError

InputKind = Literal["numeric", "category", "text", "image"]
Inputs = dict[InputKind, str | list[str]]
"""``data.inputs``: kind of input → the column(s) or array(s) it is read from."""


def check_inputs(inputs: Inputs, *, images: bool) -> None:
    """The rules ``data.inputs`` must follow before any file is read (``images``: npz arrays may be images).

    Raises:
        ValueError: an empty map or list, several columns for text or image, or images from a csv file.
    """
    if not inputs:
        raise ValueError("inputs is empty; name at least one input, e.g. {numeric: [age, income]}")
    for kind, names in inputs.items():
        if kind in ("text", "image") and not isinstance(names, str):
            raise ValueError(f"inputs.{kind} names one {'column' if kind == 'text' else 'array'}, found {names}")
        if isinstance(names, list) and not names:
            raise ValueError(f"inputs.{kind} is an empty list; name at least one column")
    if "image" in inputs and not images:
        raise ValueError("inputs.image reads an npz array of images; csv files hold no images")


def _names(spec: str | list[str]) -> list[str]:
    return [spec] if isinstance(spec, str) else list(spec)


def _check_label(inputs: Inputs, label: str, origin: Path, what: str) -> None:
    for kind, spec in inputs.items():
        if label in _names(spec):
            raise DataError(
                f"{origin}: {what} '{label}' is both the label (data.label) and part of data.inputs.{kind}; "
                "set data.label to another one or remove it from the input"
            )


def _result(x: dict[str, np.ndarray], inputs: Inputs, saved: EncoderState):
    encoder = None
    if "category" in x:
        vocab = saved.vocabularies or {}
        encoder = IdEncoder(["category"], {"category": vocab["category"]} if "category" in vocab else None)
    names = [f"{kind}:{name}" for kind, spec in inputs.items() for name in _names(spec)]
    return x, encoder, names


def csv_inputs(inputs: Inputs, table: tabular.CsvRows, label: str, saved: EncoderState):
    """Read ``data.inputs`` from a csv table.

    Returns:
        ``(x, encoder, feature_names)``: raw named inputs, the id encoder for ``category``
        (None without one) and ``"kind:column"`` names.

    Raises:
        DataError: a missing column, an empty cell, a non-number in a numeric column, or the
            label used as an input.
    """
    import numpy as np

    _check_label(inputs, label, table.path, "column")
    x: dict[str, np.ndarray] = {}
    for kind, spec in inputs.items():
        key = f"data.inputs.{kind}"
        if kind == "numeric":
            x[kind] = np.stack([tabular.parse_numeric(table, c, table.column(c, key)) for c in _names(spec)],
                               axis=1).astype(np.float32)
        elif kind == "category":
            x[kind] = np.stack([np.array(table.column(c, key), dtype=str) for c in _names(spec)], axis=1)
        elif kind == "text":
            x[kind] = np.array(table.column(spec, key), dtype=object)
        else:
            raise DataError(f"{table.path}: data.inputs.{kind} cannot be read from a csv file; use an npz file")
    return _result(x, inputs, saved)


def npz_inputs(inputs: Inputs, path: Path, arrays: dict[str, np.ndarray], n: int, label: str,
               saved: EncoderState):
    """Read ``data.inputs`` from the arrays of an npz file, each with ``n`` rows.

    Returns:
        ``(x, encoder, feature_names)`` as :func:`csv_inputs`.

    Raises:
        DataError: a missing array, a row count that differs from the label's, or a dtype
            that does not fit the kind of input.
    """
    import numpy as np

    _check_label(inputs, label, path, "array")
    for kind, spec in inputs.items():
        tabular.require_arrays(arrays, path, _names(spec), f"data.inputs.{kind}")
    x: dict[str, np.ndarray] = {}
    for kind, spec in inputs.items():
        parts = []
        for name in _names(spec):
            array = arrays[name]
            if array.ndim == 0 or len(array) != n:
                raise DataError(
                    f"{path}: array '{name}' (data.inputs.{kind}) has {len(array) if array.ndim else 0} rows "
                    f"but '{label}' has {n}; every input array needs one row per label"
                )
            parts.append(_npz_part(path, name, kind, array))
        if kind == "numeric":
            x[kind] = np.concatenate([p.reshape(n, -1) for p in parts], axis=1).astype(np.float32)
        elif kind == "category":
            x[kind] = np.stack(parts, axis=1)
        else:
            x[kind] = parts[0]
    return _result(x, inputs, saved)


def _npz_part(path: Path, name: str, kind: str, array: np.ndarray) -> np.ndarray:
    import numpy as np

    dtype = array.dtype
    where = f"{path}: array '{name}' (data.inputs.{kind})"
    if kind in ("numeric", "image") and dtype.kind not in "biuf":
        raise DataError(f"{where} has dtype {dtype}; {kind} inputs must be numbers")
    if kind == "image":
        if array.ndim not in (3, 4):
            raise DataError(f"{where} has shape {array.shape}; images need shape (n, height, width[, channels])")
        return array if dtype == np.uint8 else array.astype(np.float32)
    if kind == "category":
        if array.ndim != 1 or dtype.kind not in "biuUS":
            raise DataError(f"{where} has shape {array.shape} and dtype {dtype}; a category is one integer or "
                            "string per row, shape (n,)")
        return array.astype(str)
    if kind == "text":
        if array.ndim != 1 or dtype.kind not in "US":
            raise DataError(f"{where} has shape {array.shape} and dtype {dtype}; text is one string per row, "
                            "shape (n,), saved as a unicode array (np.array(texts, dtype=str))")
        return np.array(array.astype(str).tolist(), dtype=object)
    return array
