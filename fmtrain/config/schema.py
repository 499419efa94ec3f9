"""The config schema: one pydantic class per YAML section, each field documented.

Everything here validates without TensorFlow. Names that Keras resolves (layers,
optimizers, losses, metrics) are checked against ``keras_names``. What fmtrain registers
(data sources, preprocessing steps, model types, losses, metrics) comes from
:mod:`fmtrain.components`, the one index of components: the ``data``, ``preprocess`` and
``model`` sections are tagged unions of the params models the components registered, so
this module never imports an implementation.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fmtrain import components
from fmtrain.config import keras_names
from fmtrain.config.base import StrictModel, check_arguments, check_name, check_params
from fmtrain.registry import did_you_mean

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


# --------------------------------------------------------------------------- data


def _data_section():
    """The ``data`` section: one variant per registered source, chosen by ``source``.

    A source's config class (a ``SourceConfig`` subclass next to its loader) lists exactly the keys
    its loader reads, so a key the chosen source does not read fails here, naming the sources that read it.
    """
    variants = [Annotated[entry.params, Tag(entry.name)] for entry in components.SOURCES.entries()]

    def source_of(value: Any) -> str | None:
        return value.get("source") if isinstance(value, dict) else getattr(value, "source", None)

    def known_source(value: Any, handler) -> Any:
        # Without this a missing or unknown tag is reported at data, not at data.source.
        if isinstance(value, dict):
            if "source" not in value:
                raise ValidationError.from_exception_data("data", [{"type": "missing", "loc": ("source",),
                                                                    "input": value}])
            if not isinstance(value["source"], str):
                raise ValidationError.from_exception_data("data", [{"type": "string_type", "loc": ("source",),
                                                                    "input": value["source"]}])
            try:
                check_name("data source", value["source"], components.SOURCES.names())
            except PydanticCustomError as err:
                raise ValidationError.from_exception_data("data", [{"type": err, "loc": ("source",),
                                                                    "input": value["source"]}]) from None
        elif source_of(value) is None:
            raise ValidationError.from_exception_data("data", [{"type": "dict_type", "loc": (), "input": value}])
        return handler(value)

    return Annotated[Union[tuple(variants)], Discriminator(source_of), WrapValidator(known_source)]  # noqa: UP007 (built at run time)


DataSection = _data_section()


@functools.cache
def _data_section_adapter() -> TypeAdapter:
    # Built on first use: validating a whole file needs only Config's own validator.
    return TypeAdapter(DataSection)


def data_config(**keys: Any):
    """A ``data`` section from keyword arguments, validated as the YAML's is (tests and tools).

    Raises:
        pydantic.ValidationError: as :class:`Config` would for the same keys.
    """
    return _data_section_adapter().validate_python(keys)


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
    variants = []
    for entry in components.STEPS.entries():
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
    """A finished run directory or a .keras file whose weights start this model's body: layers are
    matched by name (a matching name with another shape is an error); the head, the layer with
    weights nearest each output, is never copied and starts at zero, so the task may differ."""
    freeze: list[str] = Field(default_factory=list)
    """Layer-name patterns (fnmatch, e.g. 'hidden_*', 'query_tower') kept frozen; see
    train.unfreeze_after_epochs."""


def model_title(model_type: str) -> str:
    """The class and JSON Schema name of a model type's section: ``text_cnn`` → ``TextCnnModel``."""
    return "".join(part.capitalize() for part in model_type.split("_")) + "Model"


def _model_type():
    variants = [
        Annotated[create_model(model_title(entry.name), __base__=(entry.params, TransferFields)), Tag(entry.name)]
        for entry in components.MODELS.entries()
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
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError(f"boundaries must increase, found {self.boundaries}")
        return self


def _schedule_kind(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "constant"
    if isinstance(value, dict):
        return value.get("schedule")
    return getattr(value, "schedule", None)


LearningRate = Annotated[
    Annotated[float, Field(gt=0), Tag("constant")]
    | Annotated[ExponentialSchedule, Tag("exponential")]
    | Annotated[CosineSchedule, Tag("cosine")]
    | Annotated[PiecewiseSchedule, Tag("piecewise")],
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
    def _typed_arguments(self) -> OptimizerConfig:
        arguments = keras_names.OPTIMIZER_ARGS[self.name]
        for key in self.model_extra or {}:
            hint = did_you_mean(key, type(self).model_fields)
            if hint and key not in arguments:  # a misspelt field of this section, not an argument
                raise ValueError(f"unknown key '{key}'{hint}")
        # Typed here, from the signatures keras_names recorded: Keras itself would take "abc" for
        # weight_decay and fail inside the compiled step.
        check_arguments(self.name, self.model_extra or {}, arguments,
                        required=keras_names.OPTIMIZER_REQUIRED_ARGS.get(self.name, ()),
                        also_valid=type(self).model_fields)
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


# What ``loss: auto`` can stand for (fmtrain.losses.resolve_loss_name); its arguments must suit one of them.
AUTO_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "mean_squared_error")


class LossConfig(_NamedWithArgs):
    """A Keras loss name (``mse``, ``sparse_categorical_crossentropy``, ``huber``, …) or auto."""

    @field_validator("name")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        return check_name("loss", value, {"auto", *components.LOSSES.names(), *keras_names.LOSSES})

    @model_validator(mode="after")
    def _typed_arguments(self) -> LossConfig:
        if self.name in components.LOSSES:
            check_params(self.name, self.args, components.loss_params(self.name), at=(self.name,))
        elif self.name == "auto":
            kinds: dict[str, str] = {}
            for loss in AUTO_LOSSES:
                for key, kind in keras_names.LOSS_ARGS[loss].items():
                    kinds[key] = kind if kinds.get(key, kind) == kind else f"{kinds[key]}|{kind}"
            check_arguments(self.name, self.args, kinds, at=(self.name,))
        else:
            check_arguments(self.name, self.args, keras_names.LOSS_ARGS[self.name],
                            required=keras_names.LOSS_REQUIRED_ARGS.get(self.name, ()), at=(self.name,))
        return self

    @property
    def from_logits(self) -> bool:
        return bool(self.args.get("from_logits", False))


class MetricConfig(_NamedWithArgs):
    """A metric name (``accuracy``, ``f1``, ``precision``, ``top_k``, ``mae``, …) with arguments."""

    @field_validator("name")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return check_name("metric", value, {"auto", *components.METRICS.names(), *keras_names.METRICS})

    @model_validator(mode="after")
    def _typed_arguments(self) -> MetricConfig:
        # fmtrain's own names (accuracy, precision, …) shadow Keras's, as in fmtrain.metrics.build_metrics.
        if self.name in components.METRICS:
            check_params(self.name, self.args, components.metric_params(self.name), at=(self.name,))
        else:
            check_arguments(self.name, self.args, keras_names.METRIC_ARGS.get(self.name, {}),
                            required=keras_names.METRIC_REQUIRED_ARGS.get(self.name, ()), at=(self.name,))
        return self


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
    """Training steps run inside one compiled call; auto: about 8,192 examples per call on a divisor of
    the epoch, never resized by timing (the same config makes the same calls every run)."""
    jit_compile: bool | Literal["auto"] = "auto"
    """Compile steps with XLA; auto: a plan cached by an earlier run, else no XLA for convolutions on a
    CPU or runs under four calls, else XLA and the plain graph are timed and the faster is kept (and
    cached); falls back when a layer cannot be compiled. metrics.json compile.plan says which and why."""
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
    never on CPU. fp16 adds loss scaling. A bare off (or false), which YAML reads as false, means off."""
    precise_bn_samples: int = Field(8192, ge=0)
    """After the last epoch, recompute batch-norm statistics as the average over this many training
    examples ("precise BN", as pycls does), so inference matches training after short runs; 0: off."""
    profile: tuple[int, int] | None = None
    """[start, stop]: run TensorFlow's profiler from global step start to step stop (rounded out to
    whole compiled calls); the trace lands in <run>/tensorboard/ (TensorBoard's Profile tab)."""

    @field_validator("steps_per_execution")
    @classmethod
    def _positive_steps(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"steps_per_execution must be at least 1 or 'auto', found {value}")
        return value

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _bare_off(cls, value: Any) -> Any:
        # YAML reads a bare `off` (and no, false) as false: `mixed_precision: off` means "off".
        return "off" if value is False else value

    @field_validator("profile")
    @classmethod
    def _profile_range(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"profile must be [start, stop] steps with 0 <= start < stop, found {list(value)}")
        return value


# --------------------------------------------------------------------------- distribute


class DistributeConfig(StrictModel):
    """Where training runs: one device, or several in sync through tf.distribute. data.batch_size
    is the global batch; each replica trains on batch_size / replicas of it."""

    strategy: Literal["auto", "one_device", "mirrored", "multi_worker"] = "auto"
    """one_device: today's single-device engine; mirrored: every local GPU (or, with cpu_devices, every
    logical CPU) holds a copy of the model and the gradients are summed each step (MirroredStrategy);
    auto: mirrored when more than one such device is visible, else one_device."""
    cpu_devices: int | None = Field(None, ge=1)
    """Split the CPU into this many logical devices, so mirrored training runs (and is tested) on a
    machine without GPUs."""


# --------------------------------------------------------------------------- report


class MlflowConfig(StrictModel):
    """Log the run to MLflow (the optional extra: pip install 'fmtrain[mlflow]')."""

    tracking_uri: str
    """Where runs are stored: a tracking server (http://…), a folder (file:/path) or a database
    (sqlite:///path/mlflow.db)."""
    experiment: str | None = None
    """The MLflow experiment (created when missing); default: the config's name."""
    artifact_location: str | None = None
    """Where a new experiment keeps its artifacts (a folder or URI); default: MLflow's, which for a
    database store is ./mlruns under the working directory."""
    log_model: bool = True
    """Also log the trained Keras model as an MLflow model."""


class ReportConfig(StrictModel):
    """Where a finished run is reported besides its run directory."""

    mlflow: MlflowConfig | None = None
    """Log params (the flattened config), per-epoch metrics, the report, metrics.json and the model."""


# --------------------------------------------------------------------------- the whole file


class Config(StrictModel):
    """A whole fmtrain run, as written in YAML."""

    _marks: Any = PrivateAttr(default=None)
    """Where each key was written (``config.yaml_marks.Marks``), so an error found while building
    the run can name the file and line; set by ``config.loader.validate_config``."""

    def __eq__(self, other: object) -> bool:
        # Where the keys were written is not part of what the config says.
        if not isinstance(other, Config):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # equal configs need not hash alike (dict fields): unhashable, as before

    name: str = Field("run", pattern=NAME_PATTERN, max_length=100)
    """Run name: letters, digits, '_', '-', '.'; runs go to runs/<name>/<timestamp>/ (default: the file's stem)."""
    seed: int = 42
    """Seeds Python, NumPy and TensorFlow, the splits and the data order."""
    data: DataSection
    """Where the examples come from (``source``: `fmtrain list sources`) and how they are split and batched;
    each source takes the common keys plus its own."""
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
    distribute: DistributeConfig = Field(default_factory=DistributeConfig)
    """Training on several devices (tf.distribute); default: one device."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    """Integrations a finished run reports to (MLflow)."""

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

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """pydantic's JSON Schema, with one definition per model type (see ``config.json_schema``),
        plus ``$defs.DataConfig``: the data section's variants with every key any source reads documented in
        one place, for editors that complete keys from ``properties``."""
        from fmtrain.config.json_schema import KeysAsWritten, as_users_write_it

        kwargs.setdefault("schema_generator", KeysAsWritten)
        return as_users_write_it(super().model_json_schema(*args, **kwargs))

    def to_yaml_dict(self) -> dict[str, Any]:
        """The resolved config as plain data, in the YAML spelling (round-trips through validation).

        ``distribute`` and ``report`` are left out while they are the defaults, so runs made before they
        existed keep their config (and its hash)."""
        out = self.model_dump(mode="json")
        ordered = ["name", "seed", "data", "preprocess", "model", "optimizer", "loss", "metrics", "train"]
        if self.distribute != DistributeConfig():
            ordered.append("distribute")
        if self.report != ReportConfig():
            ordered.append("report")
        return {key: out[key] for key in ordered}
