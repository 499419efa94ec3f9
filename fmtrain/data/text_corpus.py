"""``text_corpus``: plain text for language modelling, tokenized once and cut into packed windows.

The text (a ``.txt`` file, or every ``.txt`` file under a folder, in sorted order) becomes one
stream of token ids; each example is a window of ``sequence_length`` ids and its label the same
window shifted by one token (the next token at every position). Windows are packed back to back
— no padding — so ``padding_mask`` is all ones. The tokenizer is:

- ``byte``: UTF-8 bytes, 256 ids, nothing to learn (KerasHub's ByteTokenizer);
- ``wordpiece``: a WordPiece vocabulary of ``vocab_size`` computed by KerasHub from the leading share
  of the text the training split keeps (``1 - test_split - validation_split``), so held-out text
  never shapes it;
- ``preset``: the tokenizer of the KerasHub preset ``data.preset`` (to fine-tune that preset's LM).

The vocabulary is saved in the run as the label names (``DataInfo.class_names``: token i names
class i), so ``eval`` and ``generate`` tokenize exactly as training did. KerasHub and TensorFlow
are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from fmtrain.data import tabular
from fmtrain.data.encoding import EncoderState
from fmtrain.data.sources import SOURCES, Loaded, SourceConfig, fixed_task_reason
from fmtrain.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

WORDPIECE_RESERVED = ["[PAD]", "[UNK]"]
"""The WordPiece tokens every trained vocabulary starts with ([PAD] is id 0)."""
TOKENIZE_CHUNK = 2048
"""Lines tokenized per call."""


class TextCorpusSource(SourceConfig):
    """Plain text for causal language modelling (model.task: causal_lm)."""

    source: Literal["text_corpus"] = "text_corpus"
    """text_corpus: plain text as token windows."""
    path: str
    """A .txt file or a folder of them."""
    sequence_length: int = Field(128, ge=2)
    """Tokens per window."""
    tokenizer: Literal["byte", "wordpiece", "preset"] = "byte"
    """byte, wordpiece (learned) or preset (data.preset's)."""
    vocab_size: int = Field(2000, ge=8)
    """wordpiece: vocabulary size."""
    lowercase: bool = True
    """Lower-case the text first."""
    preset: str | None = None
    """tokenizer: preset — a KerasHub preset."""

    @classmethod
    def fixed_task(cls, source: str) -> str | None:
        return "classification"

    @model_validator(mode="after")
    def _preset_with_its_tokenizer(self) -> TextCorpusSource:
        if self.split != "last":
            raise ValueError("text_corpus holds out the last windows of the text (split: last); random windows "
                             "would share their neighbours' text with training")
        if (self.tokenizer == "preset") != (self.preset is not None):
            raise ValueError("tokenizer: preset needs data.preset (a KerasHub preset directory), and data.preset "
                             "needs tokenizer: preset")
        return self


def read_corpus(path: Path) -> str:
    """The text of a .txt file, or of every .txt file under a folder (sorted), joined by blank lines.

    Raises:
        DataError: no .txt file, a file that is not UTF-8, or no text at all.
    """
    files = sorted(p for p in path.rglob("*.txt") if p.is_file()) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .txt files; text_corpus reads a .txt file or a folder of them")
    texts = []
    for file in files:
        try:
            texts.append(file.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as err:
            raise DataError(f"{file}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None
    text = "\n\n".join(texts)
    if not text.strip():
        raise DataError(f"{path}: the text is empty")
    return text


def make_tokenizer(cfg: TextCorpusSource, vocabulary: list[str] | None, training_text: str | None = None):
    """The KerasHub tokenizer of ``cfg``: from the saved ``vocabulary`` when given, else learned from
    ``training_text`` (wordpiece) or taken from the preset.

    Raises:
        ConfigError: the preset has no tokenizer.
    """
    import keras_hub

    if cfg.tokenizer == "byte":
        return keras_hub.tokenizers.ByteTokenizer(lowercase=cfg.lowercase)
    if cfg.tokenizer == "preset":
        from fmtrain.models.hub import preset_path

        try:
            return keras_hub.tokenizers.Tokenizer.from_preset(preset_path(str(cfg.preset), "data.preset"))
        except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
            raise ConfigError(f"data.preset: {cfg.preset} has no tokenizer: {str(exc).splitlines()[0][:160]}") from None
    if vocabulary is None:
        import tensorflow as tf

        lines = [line for line in str(training_text).splitlines() if line.strip()]
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(  # a list of strings would be file names
            tf.data.Dataset.from_tensor_slices(lines).batch(1024), cfg.vocab_size,
            lowercase=cfg.lowercase, reserved_tokens=WORDPIECE_RESERVED,
        )
    return keras_hub.tokenizers.WordPieceTokenizer(vocabulary=list(vocabulary), lowercase=cfg.lowercase,
                                                   oov_token="[UNK]")


def vocabulary_of(tokenizer) -> list[str]:
    """Token i's text, for every id the tokenizer can produce (bytes as ``<0x41>``-style names)."""
    if type(tokenizer).__name__ == "ByteTokenizer":
        return [chr(i) if 32 < i < 127 else f"<0x{i:02X}>" for i in range(256)]
    return [str(token) for token in tokenizer.get_vocabulary()]


def token_stream(tokenizer, text: str) -> np.ndarray:
    """``text`` as one int32 array of token ids, tokenized line by line (newlines kept for bytes)."""
    import numpy as np
    import tensorflow as tf

    byte_level = type(tokenizer).__name__ == "ByteTokenizer"
    lines = text.splitlines(keepends=True) if byte_level else [line for line in text.splitlines() if line.strip()]
    parts = []
    for start in range(0, len(lines), TOKENIZE_CHUNK):
        ids = tokenizer(tf.constant(lines[start:start + TOKENIZE_CHUNK]))
        if hasattr(ids, "flat_values"):
            parts.append(np.asarray(ids.flat_values))
        else:  # KerasHub hands eager ragged results back as one list of ids per line
            parts += [np.asarray(line_ids, dtype=np.int64).reshape(-1) for line_ids in ids]
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)


def windows(ids: np.ndarray, length: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Packed windows: x holds ids[k·L : k·L + L], y the same shifted by one (the next tokens)."""
    import numpy as np

    count = (len(ids) - 1) // length
    x = ids[: count * length].reshape(count, length)
    y = ids[1: count * length + 1].reshape(count, length)
    return {"token_ids": x, "padding_mask": np.ones_like(x)}, y


@SOURCES.register("text_corpus", params=TextCorpusSource)
def load_text_corpus(cfg: TextCorpusSource, saved: EncoderState) -> Loaded:
    """Plain text (a .txt file or a folder of them) as packed windows of sequence_length tokens."""
    path = tabular.resolve_path(cfg.path, "text_corpus", "a .txt file or a folder of .txt files",
                                folder=Path(cfg.path).expanduser().resolve().is_dir())
    text = read_corpus(path)
    kept = 1.0 - cfg.test_split - cfg.validation_split  # the leading share the training split keeps
    tokenizer = make_tokenizer(cfg, saved.label_classes, text[: int(len(text) * kept)])
    vocabulary = vocabulary_of(tokenizer)
    ids = token_stream(tokenizer, text)
    x, y = windows(ids, cfg.sequence_length)
    n_test = len(y) - int(len(y) * (1 - cfg.test_split))
    if len(y) - n_test < 2 or (cfg.test_split and not n_test):
        raise DataError(f"{path}: {len(ids)} tokens make {len(y)} window(s) of data.sequence_length "
                        f"{cfg.sequence_length}, too few to split; give more text or a shorter sequence_length")
    state = EncoderState(task="classification", num_classes=len(vocabulary), label_classes=vocabulary)
    keep = len(y) - n_test  # the test split is the text's last windows, so build() draws none at random
    test = ({key: value[keep:] for key, value in x.items()}, y[keep:]) if n_test else None
    return Loaded({key: value[:keep] for key, value in x.items()}, y[:keep],
                  f"text_corpus {path} ({len(ids)} {cfg.tokenizer} tokens)", "classification",
                  fixed_task_reason(cfg), class_names=vocabulary, label_state=state, test=test)


def corpus_tokenizer(cfg: Any, vocabulary: list[str] | None):
    """The tokenizer a finished run's text_corpus data used (for ``fmtrain generate``)."""
    return make_tokenizer(cfg, vocabulary)
