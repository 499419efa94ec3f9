"""Text model families on integer token ids: ``text_transformer``, ``text_cnn`` and ``bilstm``.

The input is ``(batch, length)`` token ids; turning strings into ids is preprocessing's job.
Id 0 is padding by convention (Keras's TextVectorization pads with 0 and puts out-of-vocabulary
words at 1). ``vocab_size: auto`` reads the vocabulary size from the layer that produced the ids
(a TextVectorization, StringLookup or IntegerLookup step); ids straight from the data need an
explicit ``vocab_size`` (largest id + 1). ``output=None`` returns the pooled features (used by
``multimodal``). ``fmtrain.models.build_model`` passes ``vocab_sizes`` (ids per input known to
the data layer or a preprocessing lookup), which ``auto`` uses first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fmtrain.config.base import KerasActivation
from fmtrain.errors import ConfigError
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec

VocabSize = int | Literal["auto"]


def vocabulary_size(tensor, key: str, what: str, known: int | None = None) -> int:
    """How many ids ``tensor`` can hold: ``known`` (the data layer's or assemble's count) if given,
    else the vocabulary size of the lookup/vectorization layer that produced ``tensor``.

    Args:
        tensor: the Keras tensor the model receives.
        key: the config key set to ``auto`` (for the message).
        what: what the ids stand for, e.g. "token" or "user" (for the message).
        known: the size from ``build_model``'s ``vocab_sizes``, when it has one for this input.

    Raises:
        ConfigError: no size is known and ``tensor`` comes from elsewhere (the raw data, another layer).
    """
    if known:
        return int(known)
    history = getattr(tensor, "_keras_history", None)
    producer = getattr(history, "operation", None)
    size = getattr(producer, "vocabulary_size", None)
    if callable(size):
        return int(size())
    source = f"a {type(producer).__name__} layer" if producer is not None and not _is_input(producer) else "the data"
    raise ConfigError(
        f"model.{key}: auto reads the number of {what} ids from a text vectorization or lookup step in "
        f"preprocess, but the {what} ids come from {source}; give {key}: (the largest {what} id + 1)"
    )


def _is_input(operation) -> bool:
    return type(operation).__name__ == "InputLayer"


def resolve_vocab_size(params, tensor, known: int | None = None):
    """``params`` with ``vocab_size: auto`` replaced by the known or the producer's vocabulary size."""
    if params.vocab_size != "auto":
        return params
    return params.model_copy(update={"vocab_size": vocabulary_size(tensor, "vocab_size", "token", known)})


def _single_input_size(vocab_sizes: dict[str, int] | None) -> int | None:
    # build_model names a single input "inputs".
    return (vocab_sizes or {}).get("inputs")


def token_ids(inputs, family: str):
    """Check that the input is one ``(batch, length)`` tensor of ids with a fixed length.

    Raises:
        ConfigError: named inputs, strings, wrong rank or an unknown length.
    """
    if isinstance(inputs, dict):
        raise ConfigError(
            f"model.type: {family} takes one token-id input, but the data has named inputs {sorted(inputs)}; "
            "use type: multimodal with one encoder per input"
        )
    if inputs.dtype == "string":
        raise ConfigError(f"model.type: {family} needs token ids, but the input is text; add a text vectorization "
                          "step to preprocess that turns strings into integer ids")
    if len(inputs.shape) != 2:
        raise ConfigError(
            f"model.type: {family} needs token ids shaped (length,), but the input has shape {tuple(inputs.shape[1:])}"
        )
    if inputs.shape[1] is None and family == "text_transformer":
        raise ConfigError(f"model.type: {family} needs sequences of a fixed length for its position embeddings; "
                          "pad the ids to one length (output_sequence_length of the vectorization step)")
    return inputs


class _TextParams(ModelParams):
    uses_vocab_sizes = True
    vocab_size: VocabSize = "auto"
    """Number of distinct token ids (largest id + 1); auto takes the size of the text_vectorize or lookup
    step (or data vocabulary) that made the ids."""
    embed_dim: int = Field(64, ge=1)
    """Width of the token embeddings."""

    @model_validator(mode="after")
    def _vocab_fits_padding(self):
        if self.vocab_size != "auto" and self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (padding plus one token), found {self.vocab_size}")
        return self


# --------------------------------------------------------------------------- text_transformer


class TextTransformerParams(_TextParams):
    type: Literal["text_transformer"] = "text_transformer"
    num_layers: int = Field(2, ge=1)
    """Transformer encoder blocks."""
    num_heads: int = Field(4, ge=1)
    """Attention heads per block; must divide embed_dim."""
    mlp_dim: int | None = Field(None, ge=1)
    """Hidden width of each block's MLP (default: 2 × embed_dim)."""
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    """Dropout on attention weights, block outputs and the embeddings."""
    pooling: Literal["cls", "mean"] = "cls"
    """cls: a learned [CLS] token's final state (as BERT); mean: the average over non-padding tokens."""
    pad_id: int | None = Field(0, ge=0)
    """Token id that marks padding: attention and mean pooling ignore it; null attends to every position."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TextTransformerParams:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide embed_dim ({self.embed_dim})")
        return self


@MODELS.register("text_transformer", params=TextTransformerParams)
def build_text_transformer(params: TextTransformerParams, inputs, output: OutputSpec | None,
                           vocab_sizes: dict[str, int] | None = None):
    """Small BERT-style encoder on token ids: token + position embeddings, encoder blocks, pooled head."""
    import keras

    from fmtrain.models.layers import AttentionMask, ClassToken, PositionEmbedding, TokenMask, head, transformer_block
    from fmtrain.models.vision import pool_tokens

    ids = token_ids(inputs, "text_transformer")
    params = resolve_vocab_size(params, ids, _single_input_size(vocab_sizes))
    cls = params.pooling == "cls"
    x = keras.layers.Embedding(params.vocab_size, params.embed_dim, name="token_embedding")(ids)
    if cls:
        x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="embedding_ln")(x)
    if params.dropout:
        x = keras.layers.Dropout(params.dropout, name="embedding_dropout")(x)
    mask = attention_mask = None
    if params.pad_id is not None:
        mask = TokenMask(params.pad_id, prepend=int(cls), name="token_mask")(ids)
        attention_mask = AttentionMask(name="attention_mask")(mask)
    for index in range(params.num_layers):
        x = transformer_block(x, num_heads=params.num_heads, mlp_dim=params.mlp_dim or 2 * params.embed_dim,
                              dropout=params.dropout, attention_mask=attention_mask, name=f"encoder{index}")
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = pool_tokens(x, params.pooling, mask=mask)
    if output is None:
        return x
    return head(x, output, dropout=params.dropout)


# --------------------------------------------------------------------------- text_cnn


class TextCNNParams(_TextParams):
    type: Literal["text_cnn"] = "text_cnn"
    kernel_sizes: list[int] = Field(default_factory=lambda: [3, 4, 5], min_length=1)
    """Widths (in tokens) of the parallel convolutions; each is max-pooled over the sequence."""
    filters: int = Field(64, ge=1)
    """Filters per kernel size."""
    activation: KerasActivation = "relu"
    """Activation of the convolutions."""
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    """Dropout before the output layer."""

    @model_validator(mode="after")
    def _check(self) -> TextCNNParams:
        if any(k < 1 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be positive, found {self.kernel_sizes}")
        return self


@MODELS.register("text_cnn", params=TextCNNParams)
def build_text_cnn(params: TextCNNParams, inputs, output: OutputSpec | None,
                   vocab_sizes: dict[str, int] | None = None):
    """Kim-style text CNN: embeddings, parallel 1-D convolutions, max over time, head."""
    import keras

    from fmtrain.models.layers import head

    ids = token_ids(inputs, "text_cnn")
    params = resolve_vocab_size(params, ids, _single_input_size(vocab_sizes))
    length = ids.shape[1]
    too_wide = [k for k in params.kernel_sizes if length is not None and k > length]
    if too_wide:
        raise ConfigError(f"model.kernel_sizes: {too_wide} are wider than the {length}-token sequences")
    x = keras.layers.Embedding(params.vocab_size, params.embed_dim, name="token_embedding")(ids)
    pooled = []
    for k in params.kernel_sizes:
        y = keras.layers.Conv1D(params.filters, k, activation=params.activation, name=f"conv{k}")(x)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"conv{k}_max")(y))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="features")(pooled)
    if output is None:
        return x
    return head(x, output, dropout=params.dropout)


# --------------------------------------------------------------------------- bilstm


class BiLSTMParams(_TextParams):
    type: Literal["bilstm"] = "bilstm"
    units: list[int] = Field(default_factory=lambda: [64], min_length=1)
    """Units per direction of each stacked bidirectional LSTM; the last one's final states are the features."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on each LSTM's inputs and before the output layer."""
    pad_id: Literal[0] | None = 0
    """0: the LSTMs skip padding (id 0); null: every position is read."""


@MODELS.register("bilstm", params=BiLSTMParams)
def build_bilstm(params: BiLSTMParams, inputs, output: OutputSpec | None,
                 vocab_sizes: dict[str, int] | None = None):
    """Bidirectional LSTM baseline on token ids: embeddings, stacked BiLSTMs, head."""
    import keras

    from fmtrain.models.layers import head

    ids = token_ids(inputs, "bilstm")
    params = resolve_vocab_size(params, ids, _single_input_size(vocab_sizes))
    x = keras.layers.Embedding(params.vocab_size, params.embed_dim, mask_zero=params.pad_id == 0,
                               name="token_embedding")(ids)
    for index, units in enumerate(params.units):
        last = index == len(params.units) - 1
        lstm = keras.layers.LSTM(units, return_sequences=not last, dropout=params.dropout)
        x = keras.layers.Bidirectional(lstm, name=f"bilstm{index}")(x)
    if output is None:
        return x
    return head(x, output, dropout=params.dropout)
