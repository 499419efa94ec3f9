"""``hub``: KerasHub foundation models — a pretrained preset fine-tuned, or a small backbone from scratch.

``model.preset`` is a local preset directory (KerasHub's ``save_to_preset`` layout: config.json,
weights, tokenizer assets) or a KerasHub preset name, which needs the network once. ``model.task``
picks what the preset becomes:

- ``text_classifier``: the preset's own preprocessor tokenizes the text once, before training
  (:meth:`HubParams.encode_splits`), and the model fmtrain trains is a plain Keras model over the
  token ids whose body is the preset's ``TextClassifier`` (backbone ``backbone`` plus its head).
  The preprocessor rides inside that task, so ``model.keras`` carries the tokenizer and ``eval``
  tokenizes new text with exactly it.
- ``causal_lm``: token ids (from ``data.source: text_corpus``) → a backbone (a preset's, or the
  class ``model.backbone`` with ``backbone_args``, randomly initialised) → next-token
  probabilities through the backbone's tied embedding, trained with ``next_token_crossentropy``
  and reported as perplexity and next-token accuracy.
- ``image_classifier``: images → the preset's image converter (resize, rescale, inside the
  model) → the preset's ``ImageClassifier``.

``model.lora_rank`` enables KerasHub's LoRA on the backbone: only the low-rank factors of the
attention query/value projections train, every other backbone variable stays as loaded.
``model.freeze: backbone`` keeps the whole backbone frozen (the layer is named ``backbone``).
Nothing here imports Keras or KerasHub at module level.
"""

from __future__ import annotations

import socket
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fmtrain.config.base import StrictModel
from fmtrain.errors import ConfigError, first_line
from fmtrain.losses import LOSSES
from fmtrain.metrics import METRICS, MetricContext
from fmtrain.models.registry import MODELS, ModelParams, OutputSpec
from fmtrain.registry import did_you_mean

TEXT_INPUTS = ("token_ids", "padding_mask", "segment_ids")
"""The preprocessor outputs a text classifier reads (DistilBERT and RoBERTa have no segment_ids)."""
TOKENIZE_CHUNK = 4096
"""Texts tokenized per call of the preprocessor (memory stays flat on large splits)."""
TASKS = ("text_classifier", "causal_lm", "image_classifier")

# Loading a KerasHub task warns that its custom compile() was not restored; fmtrain never uses Keras's compile.
warnings.filterwarnings("ignore", message=r"`compile\(\)` was not called as part of model loading")


class HubParams(ModelParams):
    type: Literal["hub"] = "hub"
    task: Literal["text_classifier", "causal_lm", "image_classifier"]
    """What the preset becomes (causal_lm reads data.source: text_corpus)."""
    preset: str | None = None
    """A local KerasHub preset directory, or a preset name (needs the network)."""
    backbone: str | None = None
    """causal_lm from scratch: a KerasHub backbone class (GPT2Backbone), random weights."""
    backbone_args: dict[str, Any] = Field(default_factory=dict)
    """The backbone class's arguments but vocabulary_size (from the tokenizer)."""
    sequence_length: int | None = Field(None, ge=2)
    """text_classifier: tokens per text (default: the preset's)."""
    lora_rank: int | None = Field(None, ge=1)
    """Train only rank-N LoRA factors in the backbone (KerasHub enable_lora)."""
    dropout: float | None = Field(None, ge=0.0, lt=1.0)
    """Head dropout (default: the KerasHub task's)."""
    freeze: list[str] = Field(default_factory=list)
    """Layer-name patterns kept frozen; backbone: the whole backbone."""

    @field_validator("freeze", mode="before")
    @classmethod
    def _one_pattern(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _source_of_weights(self) -> HubParams:
        if self.preset is None and self.backbone is None:
            raise ValueError("give preset: (a preset directory or KerasHub name) or, for causal_lm, backbone: "
                             "(a KerasHub backbone class such as GPT2Backbone)")
        if self.backbone is not None and self.task != "causal_lm":
            raise ValueError(f"backbone: builds a causal_lm from scratch; task {self.task} fine-tunes a preset: "
                             "give preset: instead")
        if self.backbone is not None and self.preset is not None:
            raise ValueError("give either preset: or backbone:, not both")
        if self.backbone_args and self.backbone is None:
            raise ValueError("backbone_args go with backbone: (a class built from scratch); a preset has its own")
        if self.dropout is not None and self.task == "causal_lm":
            raise ValueError("dropout is the classifier head's; a causal_lm backbone sets its own (backbone_args)")
        if self.sequence_length is not None and self.task != "text_classifier":
            raise ValueError("sequence_length applies to text_classifier; for causal_lm set data.sequence_length")
        return self

    @property
    def default_loss(self) -> str:  # type: ignore[override]
        return "next_token_crossentropy" if self.task == "causal_lm" else "auto"

    @property
    def default_metrics(self) -> tuple[str, ...] | None:  # type: ignore[override]
        return ("next_token_accuracy", "perplexity") if self.task == "causal_lm" else None

    def encode_splits(self, splits, model=None):
        """text_classifier: every split's text tokenized once by the preset's preprocessor — or, given
        the run's loaded ``model``, by the one saved inside it — into int32 ``token_ids``,
        ``padding_mask`` (and ``segment_ids``) arrays. Other tasks read the data as it is.

        Raises:
            ConfigError: the data is not one text per example, or the preset has no preprocessor.
        """
        if self.task != "text_classifier":
            return splits
        preprocessor = saved_preprocessor(model) if model is not None else text_preprocessor(self)

        def encode(split):
            return None if split is None else replace(split, x=tokenize(preprocessor, split.x))

        train = encode(splits.train)
        shape = {key: tuple(value.shape[1:]) for key, value in train.x.items()}
        return replace(splits, train=train, val=encode(splits.val), test=encode(splits.test),
                       info=replace(splits.info, input_shape=shape))

    def encode_inputs(self, x, model):
        """text_classifier: texts tokenized by the preprocessor saved in the run's ``model``."""
        return tokenize(saved_preprocessor(model), x) if self.task == "text_classifier" else x


# --------------------------------------------------------------------------- presets


def is_preset_name(preset: str) -> bool:
    """A KerasHub preset name (``bert_tiny_en_uncased``, ``kaggle://…``, ``hf://…``) rather than a path."""
    return "://" in preset or not any(mark in preset for mark in ("/", "\\", "~")) and not preset.startswith(".")


TASK_CLASSES = {"text_classifier": "TextClassifier", "causal_lm": "CausalLM", "image_classifier": "ImageClassifier"}


def resolve_preset(params: HubParams) -> str:
    """``model.preset`` as KerasHub loads it (see :func:`preset_path`)."""
    return preset_path(str(params.preset), "model.preset", TASK_CLASSES[params.task])


def preset_path(preset: str, key: str, task_class: str = "CausalLM") -> str:
    """The preset KerasHub loads: an existing local directory, or a name when this machine is online.

    Args:
        preset: the config's value.
        key: the config key, for messages (model.preset, data.preset).
        task_class: the KerasHub task class the fetch command in the offline message uses.

    Raises:
        ConfigError: a path that is not a preset directory; an unknown name; a name while offline (with the
            command that fetches it on a machine with network access, and the preset: to use then).
    """
    if not is_preset_name(preset) or Path(preset).expanduser().is_dir():  # a folder named like a preset is a folder
        path = Path(preset).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{key}: no preset directory at {path}; give a folder written by "
                              "save_to_preset (config.json, weights, tokenizer assets) or a KerasHub preset name")
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}: {path} has no config.json, so it is not a KerasHub preset directory; "
                              "write one with task.save_to_preset(PATH)")
        return str(path.resolve())
    if "://" not in preset:
        import keras_hub

        known = list(keras_hub.models.Backbone.presets)
        if preset not in known:
            raise ConfigError(f"{key}: '{preset}' is neither a directory nor a KerasHub preset name"
                              f"{did_you_mean(preset, known)}")
    if not _online():
        folder = preset.rsplit("/", 1)[-1]
        raise ConfigError(
            f"{key}: '{preset}' must be downloaded and this machine is offline; on a machine with network "
            f"access run: python -c \"import keras_hub; keras_hub.models.{task_class}.from_preset('{preset}')"
            f".save_to_preset('{folder}')\" then copy that folder here and set {key.split('.')[-1]}: /path/to/{folder}"
        )
    return preset


def _online(host: str = "www.kaggle.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


_PREPROCESSORS: dict[tuple, Any] = {}


def text_preprocessor(params: HubParams):
    """The preset's TextClassifierPreprocessor (one object per preset and length, shared by tokenizing and
    the model, which saves it).

    Raises:
        ConfigError: the preset has no text classifier preprocessor (e.g. an image or causal LM preset).
    """
    import keras_hub

    preset = resolve_preset(params)
    key = (preset, params.sequence_length)
    if key not in _PREPROCESSORS:
        extra = {"sequence_length": params.sequence_length} if params.sequence_length else {}
        try:
            _PREPROCESSORS[key] = keras_hub.models.TextClassifierPreprocessor.from_preset(preset, **extra)
        except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
            raise ConfigError(f"model.preset: {_preset_label(preset)} has no text classifier preprocessor, so "
                              f"task text_classifier cannot read it ({first_line(exc, 160)}); use a "
                              "BERT/DistilBERT/RoBERTa-style preset") from None
    return _PREPROCESSORS[key]


def saved_preprocessor(model):
    """The preprocessor saved inside a trained hub text model (its KerasHub task's)."""
    import keras_hub

    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras_hub.models.Task) and getattr(layer, "preprocessor", None) is not None:
            return layer.preprocessor
    raise ConfigError("model: the run's model has no KerasHub preprocessor to tokenize text with")


def tokenize(preprocessor, texts) -> dict[str, Any]:
    """One text per example → int32 arrays per preprocessor output, tokenized once, in chunks."""
    import numpy as np
    import tensorflow as tf

    texts = np.asarray(texts)
    if texts.ndim != 1 or texts.dtype.kind not in "OUS":
        raise ConfigError(f"model.task: text_classifier reads one text per example, but the data gives examples "
                          f"of shape {list(texts.shape[1:])} and dtype {texts.dtype}; use a text source "
                          "(text_csv, text_jsonl, text_folder)")
    parts: dict[str, list] = {}
    for start in range(0, max(len(texts), 1), TOKENIZE_CHUNK):
        chunk = tf.constant([str(t) for t in texts[start:start + TOKENIZE_CHUNK]], dtype=tf.string)
        for key, value in preprocessor(chunk).items():
            parts.setdefault(key, []).append(np.asarray(value).astype(np.int32))
    return {key: np.concatenate(value) for key, value in parts.items()}


def _preset_label(preset: str) -> str:
    return preset if is_preset_name(preset) else Path(preset).name


# --------------------------------------------------------------------------- the builder


@MODELS.register("hub", params=HubParams)
def build_hub(params: HubParams, inputs, output: OutputSpec | None):
    """A KerasHub preset (or backbone class) as a text classifier, causal LM or image classifier."""
    if output is None:
        raise ConfigError("model.type: hub cannot be a multimodal encoder")
    if params.task == "text_classifier":
        return _text_classifier(params, inputs, output)
    if params.task == "causal_lm":
        return _causal_lm(params, inputs, output)
    return _image_classifier(params, inputs, output)


def _text_classifier(params: HubParams, inputs, output: OutputSpec):
    import keras_hub

    if not isinstance(inputs, dict) or "token_ids" not in inputs:
        raise ConfigError("model.task: text_classifier needs the tokenized text its preprocessor makes")
    preprocessor = text_preprocessor(params)
    backbone = _load_backbone(params)
    task_class = _task_class(keras_hub.models.TextClassifier, backbone, params)
    extra = {"dropout": params.dropout} if params.dropout is not None else {}
    task = task_class(backbone=backbone, num_classes=output.units, activation=output.activation,
                      preprocessor=preprocessor, name="text_classifier", **extra)
    _enable_lora(params, backbone)
    return task({key: inputs[key] for key in TEXT_INPUTS if key in inputs})


def _image_classifier(params: HubParams, inputs, output: OutputSpec):
    import keras_hub

    if isinstance(inputs, dict) or len(inputs.shape) != 4:
        shape = {k: tuple(v.shape[1:]) for k, v in inputs.items()} if isinstance(inputs, dict) else inputs.shape[1:]
        raise ConfigError(f"model.task: image_classifier needs images (height, width, channels), found {shape}; "
                          "add a reshape step to preprocess")
    preset = resolve_preset(params)
    backbone = _load_backbone(params)
    task_class = _task_class(keras_hub.models.ImageClassifier, backbone, params)
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except (ValueError, TypeError, KeyError, FileNotFoundError):
        converter = None
    extra = {"dropout": params.dropout} if params.dropout is not None else {}
    task = task_class(backbone=backbone, num_classes=output.units, activation=output.activation,
                      name="image_classifier", **extra)
    _enable_lora(params, backbone)
    x = inputs
    if converter is not None:
        channels = backbone.input_shape[-1] if isinstance(backbone.input_shape, tuple) else None
        if channels == 3 and x.shape[-1] == 1:
            import keras

            x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
        x = converter(x)
    return task(x)


def _causal_lm(params: HubParams, inputs, output: OutputSpec):
    import keras

    ids = inputs.get("token_ids") if isinstance(inputs, dict) else None
    if ids is None or len(ids.shape) != 2:
        raise ConfigError("model.task: causal_lm reads token windows; use data.source: text_corpus")
    if params.preset is not None:
        backbone = _load_backbone(params)
    else:
        backbone = _new_backbone(params, output.units)  # one output unit per token id of the data's tokenizer
    import keras_hub

    task_class = _task_class(keras_hub.models.CausalLM, backbone, params)
    size = int(backbone.token_embedding.input_dim)
    if size != output.units:
        raise ConfigError(f"model: the backbone has {size} token ids but the data's tokenizer has {output.units}; "
                          "use the preset's tokenizer (data.tokenizer: preset, data.preset: the same preset)")
    task = task_class(backbone=backbone, preprocessor=None, name="causal_lm")  # logits through the tied embedding
    _enable_lora(params, backbone)
    logits = task({"token_ids": ids, "padding_mask": inputs.get("padding_mask")})
    if output.activation is None:
        return logits
    return keras.layers.Activation(output.activation, dtype="float32", name="next_token")(logits)


def _new_backbone(params: HubParams, vocabulary_size: int | None):
    import keras_hub

    backbone_class = getattr(keras_hub.models, str(params.backbone), None)
    if not (isinstance(backbone_class, type) and issubclass(backbone_class, keras_hub.models.Backbone)):
        names = [n for n in dir(keras_hub.models) if n.endswith("Backbone") and n != "Backbone"]
        raise ConfigError(f"model.backbone: '{params.backbone}' is not a KerasHub backbone class"
                          f"{did_you_mean(str(params.backbone), names)}")
    if not vocabulary_size:
        raise ConfigError("model.backbone: the vocabulary size comes from the data's tokenizer; use "
                          "data.source: text_corpus")
    try:
        return backbone_class(vocabulary_size=int(vocabulary_size), name="backbone", **params.backbone_args)
    except TypeError as exc:
        raise ConfigError(f"model.backbone_args: {params.backbone} rejected them: {first_line(exc, 200)}") from None


def _load_backbone(params: HubParams):
    import keras_hub

    preset = resolve_preset(params)
    try:
        return keras_hub.models.Backbone.from_preset(preset, name="backbone")
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError) as exc:
        raise ConfigError(f"model.preset: cannot load the backbone of {_preset_label(preset)}: "
                          f"{first_line(exc, 200)}") from None


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _task_class(base, backbone, params: HubParams):
    """The KerasHub task class (e.g. BertTextClassifier) for ``backbone``'s class, as from_preset finds it."""
    found = [cls for cls in _subclasses(base) if getattr(cls, "backbone_cls", None) is type(backbone)]
    if not found:
        raise ConfigError(f"model.preset: {_preset_label(str(params.preset))} holds a {type(backbone).__name__}, "
                          f"which KerasHub has no {base.__name__} for, so it cannot be task {params.task}")
    return found[0]


def _enable_lora(params: HubParams, backbone) -> None:
    """KerasHub's enable_lora with only the LoRA factors trainable (the adapted layers' biases stay as loaded).

    Raises:
        ConfigError: the backbone has no layer LoRA can adapt (no attention query/value projections).
    """
    if params.lora_rank is None:
        return
    targets = list(backbone.default_lora_layer_names()) if hasattr(backbone, "default_lora_layer_names") else []
    backbone.enable_lora(params.lora_rank)
    adapted = [layer for layer in backbone._flatten_layers(include_self=False) if getattr(layer, "lora_enabled", False)]
    if not adapted:
        raise ConfigError(f"model.lora_rank: {type(backbone).__name__} has no layer LoRA can adapt "
                          f"(looked for {', '.join(targets) or 'attention projections'}); remove lora_rank or use "
                          "model.freeze")
    for layer in adapted:
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.trainable = False


def lora_variables(model) -> list:
    """The LoRA factors of a model (their paths end in lora_kernel_a / lora_kernel_b)."""
    return [v for v in model.variables if "lora_kernel" in v.path]


# --------------------------------------------------------------------------- loss and metrics


@LOSSES.register("next_token_crossentropy")
def build_next_token_crossentropy(from_logits: bool = False):
    """Cross-entropy of each next token, averaged over a window's positions: one loss per window.

    Args:
        from_logits: the model outputs logits, not probabilities.
    """
    import keras

    def next_token_crossentropy(y_true, y_pred):
        losses = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits)
        return keras.ops.mean(losses, axis=-1)

    return next_token_crossentropy


class NextTokenMetricParams(StrictModel):
    """Takes no arguments."""


@METRICS.register("next_token_accuracy", params=NextTokenMetricParams)
def build_next_token_accuracy(args: dict, ctx: MetricContext):
    """Share of positions whose most probable next token is the true one (causal_lm)."""
    import keras

    return keras.metrics.SparseCategoricalAccuracy(name="next_token_accuracy")


@METRICS.register("perplexity", params=NextTokenMetricParams)
def build_perplexity(args: dict, ctx: MetricContext):
    """exp(mean next-token cross-entropy) over every position (KerasHub's Perplexity; causal_lm)."""
    import keras
    import keras_hub

    class WindowPerplexity(keras_hub.metrics.Perplexity):
        """Per-window weights (fmtrain's padded evaluation) spread over the window's positions, so
        Perplexity counts tokens, not windows."""

        def update_state(self, y_true, y_pred, sample_weight=None):
            if sample_weight is not None:
                weights = keras.ops.cast(sample_weight, self.dtype)
                weights = keras.ops.reshape(weights, (-1, 1))
                sample_weight = keras.ops.broadcast_to(weights, keras.ops.shape(y_true))
            return super().update_state(y_true, y_pred, sample_weight=sample_weight)

    return WindowPerplexity(from_logits=ctx.from_logits, name="perplexity")


__all__ = ["HubParams", "TASKS", "build_hub", "lora_variables", "resolve_preset", "tokenize"]
