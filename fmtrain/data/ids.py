"""Integer ids for categorical inputs: vocabularies fitted on the training rows, 0 for the unseen.

Interactions' ``user`` and ``item`` and the ``category`` input of csv/npz records are raw values
(strings) until :func:`fmtrain.data.build` fits an :class:`IdEncoder` on the training rows. The
vocabularies are saved in ``DataInfo.encoders.vocabularies`` so ``fmtrain eval`` maps ids exactly as training did.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from fmtrain.data.encoding import EncoderState

UNSEEN = 0
"""The id of a value not seen in the training rows."""


class IdEncoder:
    """Maps raw values of some named inputs to int32 ids; other inputs pass through.

    Each input is one column (shape (n,)) or several (shape (n, k)). Column j's values get the
    ids ``offset_j + 1 .. offset_j + len(vocabulary_j)``, so the columns of one input share one
    id space and one ``Embedding(vocab_sizes[name])`` covers them; 0 is every column's unseen id.
    """

    def __init__(self, inputs: list[str], vocabularies: dict[str, list[list[str]]] | None = None):
        self.inputs = list(inputs)
        self.vocabularies = vocabularies

    def fitted(self, x: dict[str, np.ndarray]) -> IdEncoder:
        """Return an encoder whose vocabularies come from ``x`` (the training rows), or self if fitted."""
        if self.vocabularies is not None:
            return self
        vocab = {name: [sorted(set(column.tolist())) for column in _columns(x[name])] for name in self.inputs}
        return IdEncoder(self.inputs, vocab)

    def transform(self, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``x`` with each id input replaced by its int32 ids (same shape)."""
        import numpy as np

        assert self.vocabularies is not None, "fit the encoder first"
        out = dict(x)
        for name in self.inputs:
            values = np.asarray(x[name]).astype(str)
            columns, offset = [], 0
            for column, vocab in zip(_columns(values), self.vocabularies[name], strict=True):
                columns.append(_lookup(column, vocab, offset))
                offset += len(vocab)
            ids = np.stack(columns, axis=1) if columns else np.zeros((len(values), 0), np.int32)
            out[name] = ids.reshape(values.shape)
        return out

    @property
    def vocab_sizes(self) -> dict[str, int]:
        """Ids per input, the unseen id 0 included: ``Embedding(input_dim=size)`` covers them."""
        assert self.vocabularies is not None, "fit the encoder first"
        return {name: 1 + sum(len(v) for v in vocabs) for name, vocabs in self.vocabularies.items()}

    @property
    def feature_names(self) -> None:
        return None

    def add_to(self, state: EncoderState) -> EncoderState:
        """``state`` with the vocabularies; :func:`fmtrain.data.build` takes it back."""
        assert self.vocabularies is not None, "fit the encoder first"
        vocabularies = {name: [list(v) for v in vocabs] for name, vocabs in self.vocabularies.items()}
        return replace(state, vocabularies=vocabularies)


def _columns(values: np.ndarray) -> list[np.ndarray]:
    import numpy as np

    values = np.asarray(values).astype(str)
    return [values] if values.ndim == 1 else [values[:, j] for j in range(values.shape[1])]


def _lookup(values: np.ndarray, vocab: list[str], offset: int) -> np.ndarray:
    import numpy as np

    if not vocab:
        return np.full(len(values), UNSEEN, np.int32)
    sorted_vocab = np.asarray(vocab, dtype=str)
    position = np.clip(np.searchsorted(sorted_vocab, values), 0, len(vocab) - 1)
    known = sorted_vocab[position] == values
    return np.where(known, position + offset + 1, UNSEEN).astype(np.int32)
