"""The config schema: one pydantic class per YAML section, each field documented.

Everything here validates without TensorFlow. Names that Keras resolves (layers,
optimizers, losses, metrics) are checked against ``keras_names``; names fmtrain
registers (data sources, preprocessing steps, model types) against their registries.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_serializer, model_validator

from fmtrain.config import keras_names
from fmtrain.config.base import StrictModel, check_name
from fmtrain.registry import did_you_mean

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


# --------------------------------------------------------------------------- data


class DataConfig(StrictModel):
    """Where the examples come from and how they are split and batched."""

    source: str
    """Data source: a bundled set (digits, iris, wine, breast_cancer, diabetes), a keras.datasets set
    (mnist, fashion_mnist, cifar10), a file (csv, npz, text_csv, text_jsonl, interactions), a folder with
    one sub-folder per class (image_folder, text_folder) or a generated set (synthetic_sentiment,
    synthetic_ratings, synthetic_multimodal); `fmtrain list sources` describes each."""
    path: str | None = None
    """Local file or folder: required for csv, npz, text_csv, text_jsonl and interactions (a file) and for
    image_folder and text_folder (a folder with one sub-folder per class); for keras.datasets sources a
    .npz in Keras's layout (x_train, y_train, x_test, y_test) read instead of downloading."""
    label: str | None = None
    """Label column (csv, default: the last column; text_csv: the last column other than data.text),
    label key (text_jsonl, default 'label'), rating column (interactions, default 'rating'; without one
    every interaction is an implicit 1.0) or label array name (npz, default 'y')."""
    features: list[str] | None = None
    """Feature columns (csv, default: every column but the label) or feature array names (npz, default ['x'])."""
    categorical: list[str] | None = None
    """csv columns to one-hot encode (default: every non-numeric feature column)."""
    text: str | None = None
    """Column (text_csv) or key (text_jsonl) holding each example's text (default 'text')."""
    inputs: dict[Literal["numeric", "category", "text", "image"], str | list[str]] | None = None
    """Named model inputs instead of features (csv columns or npz arrays), e.g.
    {numeric: [age, income], category: [city], text: review}: numeric → float32 matrix, category →
    int32 ids from vocabularies of the training rows (0 = unseen), text (one column) → strings,
    image (one npz array) → pixels. Each kind names one input of the model."""
    image_size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None = None
    """image_folder: [height, width] every image is resized to (bilinear) when loaded; default: the
    images' own size, which must then be the same for every image."""
    color_mode: Literal["rgb", "grayscale", "rgba"] | None = None
    """image_folder: channels loaded: rgb (3, the default), grayscale (1) or rgba (4)."""
    options: dict[str, Any] | None = Field(None, validate_default=True)
    """Options of a generated source (e.g. {n: 2000, vocab_size: 300, seed: 1} for synthetic_sentiment);
    the resolved config lists every option with its default. Other sources take none."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """What the labels are; auto infers it from the source or the label column's type."""
    test_split: float = Field(0.2, ge=0.0, lt=1.0)
    """Fraction held out as the test split when the source has no test split of its own."""
    validation_split: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of the training data held out for validation after each epoch."""
    split: Literal["last", "random", "leave_last_per_user"] = "last"
    """How held-out rows are taken: 'last' rows (as Keras's validation_split), a seeded random draw, or
    (interactions, synthetic_ratings) 'leave_last_per_user': test gets each user's latest interaction
    (by timestamp, else file order), validation the one before; test_split and validation_split then
    only switch those splits on (> 0) or off (0), and users with a single interaction stay in training."""
    stratify: bool = False
    """Keep class proportions in random splits (classification only)."""
    batch_size: int = Field(32, ge=1)
    """Examples per training step."""
    shuffle: bool = True
    """Reshuffle the training data every epoch (seeded)."""
    cache: bool = True
    """Cache decoded examples in memory after the first epoch (tf.data feed)."""
    prefetch: int | Literal["auto"] = "auto"
    """Batches prepared ahead of the training step (tf.data feed); auto lets tf.data tune it."""

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        from fmtrain.data.sources import SOURCES

        return check_name("data source", value, SOURCES.names())

    @field_validator("options")
    @classmethod
    def _options_fit_the_source(cls, value: dict[str, Any] | None, info) -> dict[str, Any] | None:
        from fmtrain.data.sources import source_options

        if "source" not in info.data:
            return value
        return source_options(info.data["source"], value)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataConfig:
        if self.test_split + self.validation_split >= 1.0:
            raise ValueError(
                f"test_split ({self.test_split}) + validation_split ({self.validation_split}) "
                "leaves no training data; keep their sum below 1"
            )
        return self

    @model_validator(mode="after")
    def _keys_fit_the_source(self) -> DataConfig:
        from fmtrain.data.sources import SOURCE_KEYS

        for key, sources in SOURCE_KEYS.items():
            if getattr(self, key) is not None and self.source not in sources:
                raise ValueError(
                    f"{key} is read only by source {' or '.join(sorted(sources))}, not by '{self.source}'; remove it"
                )
        return self

    @model_validator(mode="after")
    def _inputs_replace_features(self) -> DataConfig:
        if self.inputs is None:
            return self
        if self.features is not None or self.categorical is not None:
            raise ValueError("inputs replaces features and categorical; give inputs alone")
        if not self.inputs:
            raise ValueError("inputs is empty; name at least one input, e.g. {numeric: [age, income]}")
        for kind, names in self.inputs.items():
            if kind in ("text", "image") and not isinstance(names, str):
                raise ValueError(f"inputs.{kind} names one {'column' if kind == 'text' else 'array'}, found {names}")
            if isinstance(names, list) and not names:
                raise ValueError(f"inputs.{kind} is an empty list; name at least one column")
        if "image" in self.inputs and self.source != "npz":
            raise ValueError("inputs.image reads an npz array of images; csv files hold no images")
        return self

    @model_validator(mode="after")
    def _leave_last_needs_interactions(self) -> DataConfig:
        from fmtrain.data.sources import PER_USER_SOURCES

        if self.split == "leave_last_per_user" and self.source not in PER_USER_SOURCES:
            raise ValueError(
                f"split leave_last_per_user needs user interactions (source {' or '.join(sorted(PER_USER_SOURCES))}), "
                f"not '{self.source}'; use split: last or random"
            )
        return self


# --------------------------------------------------------------------------- preprocess


class PreprocessStep(StrictModel):
    """One ``- step_name: {options}`` item of the ``preprocess`` list."""

    @property
    def step_name(self) -> str:
        return next(iter(type(self).model_fields))

    @property
    def params(self) -> StrictModel:
        return getattr(self, self.step_name)


def _step_item_type():
    from pydantic import create_model

    from fmtrain.preprocess import STEPS

    variants = []
    for entry in STEPS.entries():
        item = create_model(
            f"{entry.params.__name__.removesuffix('Params')}Step",
            __base__=PreprocessStep,
            **{entry.name: (entry.params, Field(default_factory=entry.params, description=entry.summary))},
        )
        variants.append(Annotated[item, Tag(entry.name)])

    def step_of(value: Any) -> str | None:
        if isinstance(value, PreprocessStep):
            return value.step_name
        if isinstance(value, dict) and len(value) == 1:
            return next(iter(value))
        return None

    return Annotated[
        Union[tuple(variants)],  # noqa: UP007 (a union built at run time)
        Discriminator(
            step_of,
            custom_error_type="preprocess_step",
            custom_error_message="each preprocess step is a one-key map like '- rescale: {scale: 0.0039}'",
        ),
    ]


PreprocessItem = _step_item_type()


# --------------------------------------------------------------------------- model


class TransferFields(StrictModel):
    """Keys every model type accepts: start from trained weights, keep some layers frozen."""

    init_from: str | None = None
    """A finished run directory or a .keras file whose weights start this model; layers are
    matched by name, and a matching name with another shape is an error."""
    freeze: list[str] = Field(default_factory=list)
    """Layer-name patterns (fnmatch, e.g. 'hidden_*', 'query_tower') kept frozen; see
    train.unfreeze_after_epochs."""


def _model_type():
    from pydantic import create_model

    from fmtrain.models import MODELS

    variants = [
        Annotated[create_model(entry.params.__name__, __base__=(entry.params, TransferFields)), Tag(entry.name)]
        for entry in MODELS.entries()
    ]

    def type_of(value: Any) -> str | None:
        return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)

    return Annotated[Union[tuple(variants)], Discriminator(type_of)]  # noqa: UP007 (built at run time)


ModelSection = _model_type()


# --------------------------------------------------------------------------- optimizer


class ExponentialSchedule(StrictModel):
    schedule: Literal["exponential"]
    initial: float = Field(gt=0)
    """Learning rate at step 0."""
    decay_steps: int = Field(ge=1)
    """Steps over which the rate is multiplied by decay_rate once."""
    decay_rate: float = Field(gt=0, le=1)
    staircase: bool = False
    """Decay in whole steps of decay_steps rather than smoothly."""


class CosineSchedule(StrictModel):
    schedule: Literal["cosine"]
    initial: float = Field(gt=0)
    """Peak learning rate, reached after the warm-up."""
    warmup_steps: int = Field(0, ge=0)
    """Steps of linear warm-up from 0 to initial."""
    decay_steps: int | None = Field(None, ge=1)
    """Steps of cosine decay after the warm-up (default: the rest of training)."""
    alpha: float = Field(0.0, ge=0, le=1)
    """Final learning rate as a fraction of initial."""


class PiecewiseSchedule(StrictModel):
    schedule: Literal["piecewise"]
    boundaries: list[int] = Field(min_length=1)
    """Steps at which the rate changes, increasing."""
    values: list[float] = Field(min_length=2)
    """Rates before, between and after the boundaries (one more than boundaries)."""

    @model_validator(mode="after")
    def _shapes(self) -> PiecewiseSchedule:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values needs {len(self.boundaries) + 1} entries for {len(self.boundaries)} boundaries, "
                f"found {len(self.values)}"
            )
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must increase, found {self.boundaries}")
        return self


def _schedule_kind(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "constant"
    if isinstance(value, dict):
        return value.get("schedule")
    return getattr(value, "schedule", None)


LearningRate = Annotated[
    Annotated[float, Field(gt=0), Tag("constant")] | Annotated[ExponentialSchedule, Tag("exponential")] | Annotated[CosineSchedule, Tag("cosine")] | Annotated[PiecewiseSchedule, Tag("piecewise")],
    Discriminator(
        _schedule_kind,
        custom_error_type="learning_rate",
        custom_error_message="learning_rate is a number or a map with schedule: exponential, cosine or piecewise",
    ),
]


class OptimizerConfig(StrictModel):
    """Any Keras optimizer by name; other keys (momentum, weight_decay, …) go to its constructor."""

    model_config = StrictModel.model_config | {"extra": "allow"}

    name: str = "adam"
    """Keras optimizer name: sgd, adam, adamw, rmsprop, …"""
    learning_rate: LearningRate = 0.001
    """A number, or a schedule map (exponential, cosine with warm-up, piecewise)."""
    clipnorm: float | None = Field(None, gt=0)
    """Clip each gradient to this norm."""

    @field_validator("name")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        return check_name("optimizer", value.lower(), keras_names.OPTIMIZERS)

    @model_validator(mode="after")
    def _no_misspelt_fields(self) -> OptimizerConfig:
        for key in self.model_extra or {}:
            hint = did_you_mean(key, type(self).model_fields)
            if hint:
                raise ValueError(f"unknown key '{key}'{hint}")
        return self

    @property
    def args(self) -> dict[str, Any]:
        """Constructor arguments beyond name, learning_rate and clipnorm."""
        return dict(self.model_extra or {})


# --------------------------------------------------------------------------- loss and metrics


class _NamedWithArgs(StrictModel):
    """``name`` or ``{name: {arg: value}}`` in YAML; dumped back the same way."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and len(value) == 1 and "name" not in value:
            (name, args), = value.items()
            return {"name": name, "args": args if args is not None else {}}
        return value

    @model_serializer
    def _to_yaml(self) -> Any:
        return {self.name: dict(self.args)} if self.args else self.name

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler) -> dict[str, Any]:
        # What YAML writes, not the field layout: "mse" or {huber: {delta: 2}}.
        return {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "additionalProperties": {"type": ["object", "null"]}},
            ],
            "description": cls.__doc__,
        }


class LossConfig(_NamedWithArgs):
    """A Keras loss name (``mse``, ``sparse_categorical_crossentropy``, ``huber``, …) or auto."""

    @field_validator("name")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        from fmtrain.losses import LOSSES

        return check_name("loss", value, {"auto", *LOSSES.names(), *keras_names.LOSSES})

    @property
    def from_logits(self) -> bool:
        return bool(self.args.get("from_logits", False))


class MetricConfig(_NamedWithArgs):
    """A metric name (``accuracy``, ``f1``, ``precision``, ``top_k``, ``mae``, …) with arguments."""

    @field_validator("name")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        from fmtrain.metrics import METRICS

        return check_name("metric", value, {"auto", *METRICS.names(), *keras_names.METRICS})


# --------------------------------------------------------------------------- train


class EarlyStoppingConfig(StrictModel):
    monitor: str = "val_loss"
    """Logged quantity to watch, e.g. val_loss or val_accuracy."""
    patience: int = Field(5, ge=0)
    """Epochs without improvement before stopping."""
    min_delta: float = Field(0.0, ge=0)
    """Smallest change that counts as an improvement."""
    mode: Literal["auto", "min", "max"] = "auto"
    """auto: max for accuracy-like names, min otherwise."""
    restore_best_weights: bool = True
    """Return to the best epoch's weights when training ends."""


class CheckpointConfig(StrictModel):
    """Checkpoints in <run>/checkpoints/: weights, optimizer, metrics, position; for --resume."""

    every_epochs: int | None = Field(1, ge=1)
    """Save after every N epochs (null: never by epochs)."""
    every_steps: int | None = Field(None, ge=1)
    """Also save every N training steps (calls are sized so a checkpoint falls on a call boundary)."""
    keep_last: int = Field(2, ge=1)
    """How many of the most recent checkpoints to keep."""
    keep_best: bool = True
    """Also keep the checkpoint with the best monitored value."""
    monitor: str = "auto"
    """Quantity that defines 'best': auto is val_loss with a validation split, loss without."""
    mode: Literal["auto", "min", "max"] = "auto"
    """auto: max for accuracy-like names, min otherwise."""


class TrainConfig(StrictModel):
    epochs: int = Field(10, ge=1)
    """Passes over the training data."""
    steps_per_execution: int | Literal["auto"] = "auto"
    """Training steps run inside one compiled call; auto sizes calls to ~0.2 s each."""
    jit_compile: bool | Literal["auto"] = "auto"
    """Compile steps with XLA; auto uses it and falls back when a layer cannot be compiled."""
    feed: Literal["auto", "graph", "dataset"] = "auto"
    """graph: in-memory arrays on the device, batches gathered inside the compiled loop;
    dataset: a tf.data pipeline (shuffle, cache, prefetch); auto: graph for in-memory data."""
    early_stopping: EarlyStoppingConfig | None = None
    """Stop when a monitored quantity stops improving (off unless given)."""
    unfreeze_after_epochs: int | None = Field(None, ge=1)
    """Fine-tuning: after this many epochs every frozen layer (model.freeze) becomes trainable."""
    fine_tune_learning_rate: float | None = Field(None, gt=0)
    """Learning rate after unfreezing (default: a tenth of optimizer.learning_rate)."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """When to save resumable checkpoints."""
    deterministic: bool = False
    """Deterministic ops and decisions (no timing-based choices): two runs, or a killed and
    resumed run, give identical numbers. Somewhat slower."""
    strict_compile: bool = False
    """Make a retrace of a compiled step (a new input shape or Python value) an error."""
    mixed_precision: Literal["auto", "off", "bf16", "fp16"] = "auto"
    """Compute in bfloat16/float16 with float32 weights; auto uses bf16 on GPUs that support it,
    never on CPU. fp16 adds loss scaling."""

    @field_validator("steps_per_execution")
    @classmethod
    def _positive_steps(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"steps_per_execution must be at least 1 or 'auto', found {value}")
        return value


# --------------------------------------------------------------------------- the whole file


class Config(StrictModel):
    """A whole fmtrain run, as written in YAML."""

    name: str = Field("run", pattern=NAME_PATTERN, max_length=100)
    """Run name: letters, digits, '_', '-', '.'; runs go to runs/<name>/<timestamp>/ (default: the file's stem)."""
    seed: int = 42
    """Seeds Python, NumPy and TensorFlow, the splits and the data order."""
    data: DataConfig
    preprocess: list[PreprocessItem] = Field(default_factory=list)
    """Steps fitted on the training split, in order (see `fmtrain list preprocess`): rescale,
    standardize, reshape, flatten, resize, augment, text_vectorize, lookup, one_hot; with several
    named inputs each feature step names its `input:`."""
    model: ModelSection
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    loss: LossConfig = Field(default_factory=lambda: LossConfig(name="auto"))
    """auto: sparse_categorical_crossentropy for classification, mse for regression."""
    metrics: list[MetricConfig] = Field(default_factory=lambda: [MetricConfig(name="auto")])
    """auto: accuracy for classification, mae for regression."""
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _early_stopping_needs_validation(self) -> Config:
        stopping = self.train.early_stopping
        if stopping and stopping.monitor.startswith("val_") and self.data.validation_split == 0:
            raise ValueError(
                f"train.early_stopping.monitor is '{stopping.monitor}' but data.validation_split is 0; "
                "set data.validation_split (e.g. 0.2) or monitor a training quantity such as 'loss'"
            )
        return self

    @model_validator(mode="after")
    def _unfreezing_needs_frozen_layers(self) -> Config:
        if self.train.unfreeze_after_epochs and not self.model.freeze:
            raise ValueError("train.unfreeze_after_epochs needs model.freeze: name the layers to keep frozen first")
        if self.train.unfreeze_after_epochs and self.train.unfreeze_after_epochs >= self.train.epochs:
            raise ValueError(
                f"train.unfreeze_after_epochs ({self.train.unfreeze_after_epochs}) must be less than "
                f"train.epochs ({self.train.epochs}), or nothing is fine-tuned"
            )
        return self

    def to_yaml_dict(self) -> dict[str, Any]:
        """The resolved config as plain data, in the YAML spelling (round-trips through validation)."""
        out = self.model_dump(mode="json")
        ordered = ["name", "seed", "data", "preprocess", "model", "optimizer", "loss", "metrics", "train"]
        return {key: out[key] for key in ordered}
