"""``applications``: a ``keras.applications`` backbone without its classifier, plus a head.

fmtrain never downloads: ``weights`` is null (random initialisation) or a local weights file
for the backbone without its top (``include_top=False``). Inputs reach the backbone as they are:
scale them the way the backbone's ``preprocess_input`` expects (MobileNetV2: [-1, 1]; EfficientNet
and ConvNeXt: 0..255, they normalise inside; ResNet50/VGG: caffe-style mean subtraction).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from fmtrain.errors import ConfigError, first_line
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec

BACKBONES = (
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L",
    "EfficientNetV2M", "EfficientNetV2S",
    "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "NASNetLarge", "NASNetMobile",
    "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2", "ResNet50", "ResNet50V2",
    "VGG16", "VGG19", "Xception",
)
# Set by fmtrain itself; backbone_args may not override them.
RESERVED_ARGS = ("include_top", "weights", "input_shape", "input_tensor", "pooling", "classes",
                 "classifier_activation", "name")


class ApplicationsParams(ModelParams):
    type: Literal["applications"] = "applications"
    backbone: Literal[BACKBONES]  # type: ignore[valid-type]
    """keras.applications model name: MobileNetV2, ResNet50, EfficientNetB0, …"""
    weights: str | None = None
    """null: random initialisation; or a local weights file of the backbone without its top (.h5).
    'imagenet' is refused: fmtrain does not download."""
    trainable: bool = True
    """false freezes the backbone (its batch norms run in inference mode); only the head trains."""
    pooling: Literal["avg", "max"] = "avg"
    """Global pooling of the backbone's last feature map."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout before the output layer."""
    backbone_args: dict[str, Any] = Field(default_factory=dict)
    """Extra constructor arguments of the backbone, e.g. ``{alpha: 0.35}`` for MobileNetV2."""

    @field_validator("weights")
    @classmethod
    def _local_weights(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value == "imagenet":
            backbone = info.data.get("backbone", "<backbone>")
            raise ValueError(
                "fmtrain does not download weights; on a machine with network access run "
                f"keras.applications.{backbone}(weights='imagenet', include_top=False) once, then pass the "
                "file it caches (~/.keras/models/…notop.h5) as weights: /path/to/file.h5"
            )
        if value is not None and not value.endswith((".h5", ".keras")):
            raise ValueError(f"weights must be null or a .h5 weights file, found '{value}'")
        return value

    @field_validator("backbone_args")
    @classmethod
    def _no_reserved_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & set(RESERVED_ARGS))
        if reserved:
            raise ValueError(f"{reserved} are set by fmtrain (see weights, pooling); remove them from backbone_args")
        return value


@MODELS.register("applications", params=ApplicationsParams)
def build_applications(params: ApplicationsParams, inputs, output: OutputSpec | None):
    """A keras.applications backbone (MobileNetV2, ResNet50, EfficientNetB0, …) with local or no weights, and a head."""
    import keras

    from fmtrain.models.layers import head
    from fmtrain.models.vision import as_image

    x = as_image(inputs, "applications")
    if params.weights is not None:
        if not Path(params.weights).is_file():
            raise ConfigError(f"model.weights: file not found: {params.weights}")
        if x.shape[-1] == 1:
            # Pretrained stems expect three channels; grey images repeat theirs.
            x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    constructor = getattr(keras.applications, params.backbone)
    try:
        backbone = constructor(include_top=False, weights=params.weights, input_shape=tuple(x.shape[1:]),
                               pooling=params.pooling, **params.backbone_args)
    except TypeError as exc:
        raise ConfigError(f"model.backbone_args: {params.backbone} rejected them: {exc}") from exc
    except ValueError as exc:
        key = "weights" if params.weights is not None and "weight" in str(exc).lower() else "backbone"
        raise ConfigError(f"model.{key}: {params.backbone} cannot be built on input of shape "
                          f"{tuple(x.shape[1:])}: {first_line(exc, 300)}") from exc
    backbone.trainable = params.trainable
    x = backbone(x)
    if output is None:
        return x
    return head(x, output, dropout=params.dropout)
