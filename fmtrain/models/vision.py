"""Image model families: ``cnn``, ``resnet`` and ``vit``.

Each builder takes images shaped ``(H, W)`` (grey; a channel axis is added) or ``(H, W, C)``.
Passing ``output=None`` is the internal "features only" mode used by ``multimodal``: the builder
returns the pooled feature vector instead of the task's output layer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fmtrain.config.base import KerasActivation
from fmtrain.errors import ConfigError
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec


def as_image(inputs, family: str):
    """The input as ``(batch, H, W, C)``: grey ``(H, W)`` images get a channel axis.

    Raises:
        ConfigError: the input is not an image, or several named inputs were given.
    """
    import keras

    if isinstance(inputs, dict):
        raise ConfigError(
            f"model.type: {family} takes one image input, but the data has named inputs {sorted(inputs)}; "
            "use type: multimodal with one encoder per input"
        )
    shape = tuple(inputs.shape[1:])
    if len(shape) == 2:
        return keras.layers.Reshape((*shape, 1), name="add_channel")(inputs)
    if len(shape) == 3:
        return inputs
    hint = " such as '- reshape: {shape: [28, 28, 1]}'" if len(shape) == 1 else ""
    raise ConfigError(
        f"model.type: {family} needs images shaped (H, W) or (H, W, C), but the input has shape {shape}; "
        f"add a preprocess step{hint}"
    )


# --------------------------------------------------------------------------- cnn


class CNNParams(ModelParams):
    type: Literal["cnn"] = "cnn"
    filters: list[int] = Field(default_factory=lambda: [32, 64], min_length=1)
    """Filters of each conv block, in order; each block ends with pooling (see pool)."""
    kernel_size: int = Field(3, ge=1)
    """Side of the square convolution kernels."""
    convs_per_block: int = Field(1, ge=1)
    """Conv layers in each block before its pooling."""
    activation: KerasActivation = "relu"
    """Activation after each convolution."""
    batch_norm: bool = True
    """Batch normalization between each convolution and its activation."""
    pool: Literal["max", "avg", "none"] = "max"
    """2×2 pooling at the end of each block (halves height and width)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout after each block."""
    global_pool: Literal["avg", "max", "flatten"] = "avg"
    """How the last feature map becomes a vector."""
    dense_units: list[int] = Field(default_factory=list)
    """Hidden Dense layers of the head, before the output layer."""
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout right before the output layer."""


@MODELS.register("cnn", params=CNNParams)
def build_cnn(params: CNNParams, inputs, output: OutputSpec | None):
    """Convolutional network: conv blocks (BN, pooling, dropout), global pooling, head."""
    import keras

    from fmtrain.models.layers import head

    x = as_image(inputs, "cnn")
    height, width = x.shape[1], x.shape[2]
    for block, filters in enumerate(params.filters):
        for conv in range(params.convs_per_block):
            name = f"block{block}_conv{conv}"
            x = keras.layers.Conv2D(filters, params.kernel_size, padding="same", use_bias=not params.batch_norm,
                                    name=name)(x)
            if params.batch_norm:
                x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
            x = keras.layers.Activation(params.activation, name=f"{name}_{params.activation}")(x)
        if params.pool != "none":
            if min(height, width) < 2:
                raise ConfigError(
                    f"model.filters: {len(params.filters)} pooled blocks shrink the "
                    f"{inputs.shape[1]}×{inputs.shape[2]} "
                    f"image below 1×1 at block {block}; use at most {block} blocks or pool: none"
                )
            height, width = height // 2, width // 2
            pool = keras.layers.MaxPooling2D if params.pool == "max" else keras.layers.AveragePooling2D
            x = pool(2, name=f"block{block}_pool")(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout, name=f"block{block}_dropout")(x)
    x = _global_pool(x, params.global_pool)
    if output is None:
        return x
    return head(x, output, hidden_units=params.dense_units, activation=params.activation, dropout=params.head_dropout)


def _global_pool(x, how: str):
    import keras

    if how == "avg":
        return keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if how == "max":
        return keras.layers.GlobalMaxPooling2D(name="global_pool")(x)
    return keras.layers.Flatten(name="flatten")(x)


# --------------------------------------------------------------------------- resnet


class ResNetParams(ModelParams):
    type: Literal["resnet"] = "resnet"
    depth: list[int] = Field(default_factory=lambda: [2, 2, 2], min_length=1)
    """Residual blocks per stage; every stage after the first halves height and width and doubles the filters."""
    width: int = Field(16, ge=1)
    """Filters of the stem and the first stage."""
    activation: KerasActivation = "relu"
    """Activation inside the blocks."""
    head_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout right before the output layer."""

    @field_validator("depth")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(d < 1 for d in value):
            raise ValueError(f"every stage needs at least 1 block, found {value}")
        return value


@MODELS.register("resnet", params=ResNetParams)
def build_resnet(params: ResNetParams, inputs, output: OutputSpec | None):
    """Small residual network (3×3 stem, basic blocks, stages of depth), global pooling, head."""
    import keras

    from fmtrain.models.layers import head

    x = as_image(inputs, "resnet")
    x = keras.layers.Conv2D(params.width, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation(params.activation, name="stem_act")(x)
    for stage, blocks in enumerate(params.depth):
        filters = params.width * 2 ** stage
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, params.activation, name=f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if output is None:
        return x
    return head(x, output, dropout=params.head_dropout)


def _basic_block(x, filters: int, strides: int, activation: str, name: str):
    import keras

    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.Activation(activation, name=f"{name}_act1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation(activation, name=f"{name}_out")(y)


# --------------------------------------------------------------------------- vit


class ViTParams(ModelParams):
    type: Literal["vit"] = "vit"
    patch_size: int = Field(ge=1)
    """Side of the square patches; must divide the image's height and width."""
    embed_dim: int = Field(64, ge=1)
    """Width of the patch embeddings and of every encoder block."""
    num_layers: int = Field(4, ge=1)
    """Transformer encoder blocks."""
    num_heads: int = Field(4, ge=1)
    """Attention heads per block; must divide embed_dim."""
    mlp_dim: int | None = Field(None, ge=1)
    """Hidden width of each block's MLP (default: 2 × embed_dim)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on attention weights, block outputs and the embeddings."""
    pooling: Literal["cls", "mean"] = "cls"
    """cls: a learned class token's final state (as ViT); mean: the average of all patch states."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ViTParams:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide embed_dim ({self.embed_dim})")
        return self


@MODELS.register("vit", params=ViTParams)
def build_vit(params: ViTParams, inputs, output: OutputSpec | None):
    """Vision Transformer: patch embedding, position embeddings, encoder blocks, cls or mean pooling."""
    import keras

    from fmtrain.models.layers import ClassToken, PositionEmbedding, head, transformer_block

    x = as_image(inputs, "vit")
    height, width = x.shape[1], x.shape[2]
    p = params.patch_size
    if height % p or width % p:
        divisors = [d for d in range(1, min(height, width) + 1) if height % d == 0 and width % d == 0]
        raise ConfigError(
            f"model.patch_size: {p} does not divide the {height}×{width} image; choose one of {divisors}"
        )
    x = keras.layers.Conv2D(params.embed_dim, p, strides=p, name="patch_embedding")(x)
    x = keras.layers.Reshape(((height // p) * (width // p), params.embed_dim), name="patches")(x)
    if params.pooling == "cls":
        x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    if params.dropout:
        x = keras.layers.Dropout(params.dropout, name="embedding_dropout")(x)
    for index in range(params.num_layers):
        x = transformer_block(x, num_heads=params.num_heads, mlp_dim=params.mlp_dim or 2 * params.embed_dim,
                              dropout=params.dropout, name=f"encoder{index}")
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = pool_tokens(x, params.pooling)
    if output is None:
        return x
    return head(x, output)


def pool_tokens(x, pooling: str, mask=None):
    """cls: the first token's state; mean: the average over tokens (``mask`` excludes padding)."""
    import keras

    if pooling == "cls":
        first = keras.layers.Cropping1D((0, x.shape[1] - 1), name="cls_state")(x)
        return keras.layers.Flatten(name="pooled")(first)
    return keras.layers.GlobalAveragePooling1D(name="pooled")(x, mask=mask)
