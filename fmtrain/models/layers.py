"""Keras objects the model families need and Keras lacks, plus the blocks built from them.

This module imports Keras at the top, so only builder bodies import it. Every layer here is
registered under the ``fmtrain`` package so that ``model.keras`` reloads in safe mode — but only
once this module has been imported: a process that loads a saved model must call
:func:`fmtrain.models.ensure_custom_layers` first.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fmtrain")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per sequence position to ``(batch, length, dim)`` inputs."""

    def __init__(self, initializer="random_normal", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        length, dim = input_shape[-2], input_shape[-1]
        self.embedding = self.add_weight(name="embedding", shape=(length, dim), initializer=self.initializer)

    def call(self, inputs):
        return inputs + ops.cast(self.embedding, inputs.dtype)[None]

    def get_config(self):
        return {**super().get_config(), "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="fmtrain")
class ClassToken(keras.layers.Layer):
    """Prepends one learned token to ``(batch, length, dim)`` inputs (ViT/BERT's [CLS])."""

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]), initializer="zeros")

    def call(self, inputs):
        token = ops.broadcast_to(ops.cast(self.token, inputs.dtype), (ops.shape(inputs)[0], 1, ops.shape(inputs)[-1]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="fmtrain")
class TokenMask(keras.layers.Layer):
    """``True`` where a token id is not ``pad_id``; with ``prepend`` extra always-true leading positions."""

    def __init__(self, pad_id: int = 0, prepend: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = pad_id
        self.prepend = prepend

    def call(self, ids):
        mask = ops.not_equal(ids, ops.cast(self.pad_id, ids.dtype))
        if self.prepend:
            mask = ops.concatenate([ops.ones((ops.shape(ids)[0], self.prepend), dtype="bool"), mask], axis=1)
        return mask

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + self.prepend
        return (input_shape[0], length)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(self.compute_output_shape(ids.shape), dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id, "prepend": self.prepend}


@keras.saving.register_keras_serializable(package="fmtrain")
class AttentionMask(keras.layers.Layer):
    """``(batch, length)`` key mask → ``(batch, 1, length)``: every query may attend to the real tokens."""

    def call(self, mask):
        return ops.expand_dims(mask, 1)

    def compute_output_spec(self, mask):
        return keras.KerasTensor((mask.shape[0], 1, mask.shape[1]), dtype="bool")

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="fmtrain")
class ScalarBias(keras.layers.Layer):
    """Adds one learned scalar (the global bias of matrix factorization)."""

    def __init__(self, initial_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_value = float(initial_value)

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(), initializer=keras.initializers.Constant(self.initial_value))

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "initial_value": self.initial_value}


@keras.saving.register_keras_serializable(package="fmtrain")
class InBatchScores(keras.layers.Layer):
    """``[queries, candidates]`` of shape ``(batch, dim)`` → ``queries @ candidates.T / temperature``.

    Row ``i`` scores query ``i`` against every candidate of the batch; the diagonal holds the pairs
    that were observed together.
    """

    def __init__(self, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, inputs):
        queries, candidates = inputs
        return ops.matmul(queries, ops.transpose(candidates)) / self.temperature

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][0])

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


class InBatchRecall(keras.metrics.Mean):
    """Share of rows whose diagonal score ranks among the row's top ``k`` (ties count in its favour).

    Used with :class:`InBatchScores`: each query competes only against the other candidates of its
    batch, so the number depends on the batch size (see ``two_tower`` in recommenders.py).
    """

    def __init__(self, k: int = 10, name: str | None = None, **kwargs):
        super().__init__(name=name or f"recall_at_{k}", **kwargs)
        self.k = k

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = ops.convert_to_tensor(y_pred)
        positive = ops.expand_dims(ops.diagonal(scores), -1)
        better = ops.sum(ops.cast(scores > positive, "int32"), axis=-1)
        hits = ops.cast(better < self.k, self.dtype)
        return super().update_state(hits, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


# --------------------------------------------------------------------------- blocks


def transformer_block(x, *, num_heads: int, mlp_dim: int, dropout: float, attention_mask=None, name: str):
    """One pre-norm Transformer encoder block: x + MHA(LN(x)), then x + MLP(LN(x))."""
    dim = x.shape[-1]
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    y = keras.layers.MultiHeadAttention(num_heads, dim // num_heads, dropout=dropout, name=f"{name}_attention")(
        y, y, attention_mask=attention_mask
    )
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_attention_dropout")(y)
    x = keras.layers.Add(name=f"{name}_residual1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    y = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(y)
    y = keras.layers.Dense(dim, name=f"{name}_mlp2")(y)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_mlp_dropout")(y)
    return keras.layers.Add(name=f"{name}_residual2")([x, y])


def head(features, output, *, hidden_units=(), activation: str = "relu", dropout: float = 0.0):
    """Optional hidden Dense layers, dropout, and the task's output layer (named ``output``).

    The output layer computes in float32 under a mixed-precision policy, so softmax and the loss stay exact.
    """
    x = features
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation=activation, name=f"head_{index}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(output.units, activation=output.activation, dtype="float32", name="output")(x)
