"""``multimodal``: one registered encoder per named input, a fusion, and one head.

Each encoder is a registered family built in its "features only" mode (``output=None``), wrapped
in a nested model named ``<input>_encoder``, so two encoders of the same family never clash.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, model_validator

from fmtrain.config.base import KerasActivation
from fmtrain.errors import ConfigError
from fmtrain.models import applications, builders, text, vision  # noqa: F401  (register the encoder families)
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec
from fmtrain.registry import did_you_mean

# Families that can encode one input into a feature vector. mlp lacks a features-only mode of
# its own; its features are the input of its layer named "output".
ENCODER_TYPES = ("cnn", "resnet", "vit", "applications", "text_transformer", "text_cnn", "bilstm", "mlp", "sequential")


def _type_of(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


Encoder = Annotated[
    Union[tuple(Annotated[MODELS.get(name).params, Tag(name)] for name in ENCODER_TYPES)],  # noqa: UP007 (built at run time)
    Discriminator(_type_of),
]


class MultimodalParams(ModelParams):
    type: Literal["multimodal"] = "multimodal"
    uses_vocab_sizes = True
    encoders: dict[str, Encoder] = Field(min_length=1)
    """One encoder per named input: ``image: {type: cnn, filters: [16]}``, ``text: {type: text_transformer}``,
    ``numeric: {type: mlp}``. Every input needs one."""
    fusion: Literal["concat", "attention"] = "concat"
    """concat: join the feature vectors; attention: project each to fusion_dim, one Transformer block
    across the inputs, then average."""
    fusion_dim: int = Field(64, ge=1)
    """attention: common width of the projected features."""
    num_heads: int = Field(4, ge=1)
    """attention: heads of the fusion block; must divide fusion_dim."""
    hidden_units: list[int] = Field(default_factory=list)
    """Hidden Dense layers of the head, after the fusion."""
    activation: KerasActivation = "relu"
    """Activation of the head's hidden layers."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout in the fusion block and before the output layer."""

    @model_validator(mode="after")
    def _check(self) -> MultimodalParams:
        if self.fusion == "attention" and self.fusion_dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide fusion_dim ({self.fusion_dim})")
        return self


@MODELS.register("multimodal", params=MultimodalParams)
def build_multimodal(params: MultimodalParams, inputs, output: OutputSpec, vocab_sizes: dict[str, int] | None = None):
    """One encoder per named input (any image/text/mlp family), concat or attention fusion, one head."""
    import keras

    from fmtrain.models.layers import PositionEmbedding, head, transformer_block

    if not isinstance(inputs, dict):
        raise ConfigError(
            f"model.type: multimodal needs named inputs, one per encoder, but the data has one input of shape "
            f"{tuple(inputs.shape[1:])}"
        )
    for name in params.encoders:
        if name not in inputs:
            raise ConfigError(
                f"model.encoders.{name}: the data has no input '{name}'{did_you_mean(name, inputs)}; "
                f"inputs: {sorted(inputs)}"
            )
    missing = [name for name in inputs if name not in params.encoders]
    if missing:
        raise ConfigError(
            f"model.encoders: no encoder for input '{missing[0]}'; add e.g. '{missing[0]}: {{type: mlp}}'"
        )

    known = vocab_sizes or {}
    features = [_encode(name, encoder, inputs[name], known.get(name)) for name, encoder in params.encoders.items()]
    if params.fusion == "concat":
        x = features[0] if len(features) == 1 else keras.layers.Concatenate(name="fused")(features)
    else:
        tokens = []
        for name, feature in zip(params.encoders, features, strict=True):
            token = keras.layers.Dense(params.fusion_dim, name=f"{name}_projection")(feature)
            tokens.append(keras.layers.Reshape((1, params.fusion_dim), name=f"{name}_token")(token))
        x = tokens[0] if len(tokens) == 1 else keras.layers.Concatenate(axis=1, name="tokens")(tokens)
        x = PositionEmbedding(name="input_embedding")(x)
        x = transformer_block(x, num_heads=params.num_heads, mlp_dim=2 * params.fusion_dim, dropout=params.dropout,
                              name="fusion")
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="fusion_ln")(x)
        x = keras.layers.GlobalAveragePooling1D(name="fused")(x)
    return head(x, output, hidden_units=params.hidden_units, activation=params.activation, dropout=params.dropout)


def _encode(name: str, params, tensor, vocab_size: int | None):
    """Build ``params``'s family without its head as a nested model, and apply it to ``tensor``."""
    import keras

    try:
        if getattr(params, "vocab_size", None) == "auto":
            params = text.resolve_vocab_size(params, tensor, vocab_size)
        encoder_in = keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=f"{name}_input")
        entry = MODELS.get(params.type)
        if params.type == "mlp":
            with_head = keras.Model(encoder_in, entry.build(params, encoder_in, OutputSpec(1, None)))
            features = with_head.get_layer("output").input
        else:
            features = entry.build(params, encoder_in, None)
        if len(features.shape) != 2:
            raise ConfigError(
                f"model.type: a {params.type} encoder must end in one feature vector per example, but it ends "
                f"in shape {tuple(features.shape[1:])}; end its layers with Flatten or global pooling"
            )
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("model.", f"model.encoders.{name}.", 1)) from exc
    return keras.Model(encoder_in, features, name=f"{name}_encoder")(tensor)
