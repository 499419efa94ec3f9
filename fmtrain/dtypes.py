"""The one rule for what dtype an input array reaches the model as.

Strings stay strings (text models vectorize inside the graph), integer ids become int32
(embeddings look them up), everything else numeric — uint8 pixels included — float32.
"""

from __future__ import annotations

import numpy as np


def fed_dtype(array) -> str:
    """The Keras/TensorFlow dtype name ``array`` is fed as: ``string``, ``int32`` or ``float32``."""
    dtype = np.asarray(array).dtype
    if dtype.kind in "OUS":
        return "string"
    if dtype.kind in "iu" and dtype != np.uint8:
        return "int32"
    return "float32"


def as_fed(array) -> np.ndarray:
    """``array`` converted to :func:`fed_dtype` (strings are left as they are)."""
    array = np.asarray(array)
    dtype = fed_dtype(array)
    return array if dtype == "string" else array.astype(dtype)
