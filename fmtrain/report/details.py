"""What ``fmtrain fit`` records for the report besides metrics: ``data_stats.json`` (see
:mod:`fmtrain.data_stats`) and ``model_summary.json`` (the layer table, trainable and frozen
parameters). The report reads them back; runs made before they existed simply lack the sections."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmtrain.data_stats import DataStats, data_stats
from fmtrain.errors import RunDirError
from fmtrain.runs import RunDir

if TYPE_CHECKING:
    from fmtrain.data import Splits

DATA_STATS = "data_stats.json"
MODEL_SUMMARY = "model_summary.json"


@dataclass(frozen=True)
class LayerRow:
    name: str
    """Nested layers are named by their path (``body/dense``)."""
    kind: str
    """The layer's class."""
    output_shape: str | None
    params: int
    trainable: bool
    """False for a frozen layer (``model.freeze``, transfer learning)."""


@dataclass(frozen=True)
class ModelSummary:
    """``model_summary.json``, for the model as saved (after any fine-tuning phase unfroze it)."""

    name: str
    layers: list[LayerRow]
    trainable_params: int
    frozen_params: int
    """Weights of frozen layers."""
    state_params: int
    """Other non-trainable values: normalization statistics, batch-norm moving averages."""

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.frozen_params + self.state_params

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSummary:
        """Read back :meth:`to_dict`'s output; unknown keys are ignored.

        Raises:
            KeyError, TypeError: not a model summary.
        """
        layers = [LayerRow(name=row["name"], kind=row["kind"], output_shape=row.get("output_shape"),
                           params=int(row["params"]), trainable=bool(row["trainable"])) for row in data["layers"]]
        return cls(name=data["name"], layers=layers, trainable_params=int(data["trainable_params"]),
                   frozen_params=int(data["frozen_params"]), state_params=int(data["state_params"]))


def summarize_model(model) -> ModelSummary:
    """Every layer that holds no layers of its own (nested models are opened), with its parameters."""
    rows: list[LayerRow] = []
    trainable = frozen = state = 0

    def visit(layer, prefix: str) -> None:
        nonlocal trainable, frozen, state
        for child in getattr(layer, "layers", []):
            name = f"{prefix}{child.name}"
            if hasattr(child, "layers"):
                visit(child, f"{name}/")
                continue
            train_count = _count(child.trainable_weights)
            rest = _count(child.non_trainable_weights)
            if child.trainable:
                trainable, state = trainable + train_count, state + rest
            else:  # Keras marks a frozen layer's weights non-trainable; none of it trains
                frozen += train_count + rest
            rows.append(LayerRow(name=name, kind=type(child).__name__, output_shape=_output_shape(child),
                                 params=train_count + rest, trainable=bool(child.trainable)))

    visit(model, "")
    return ModelSummary(name=model.name, layers=rows, trainable_params=trainable, frozen_params=frozen,
                        state_params=state)


def write_fit_details(run_dir: Path, splits: Splits | None, model) -> None:
    """Write ``data_stats.json`` (unless ``splits`` is None: streamed data is not in memory to count)
    and ``model_summary.json`` into a run directory (called by fit)."""
    run = RunDir(run_dir)
    if splits is not None:
        run.write_json(run.path / DATA_STATS, data_stats(splits).to_dict())
    run.write_json(run.path / MODEL_SUMMARY, summarize_model(model).to_dict())


def read_data_stats(run_dir: Path) -> DataStats | None:
    """``data_stats.json``, or None when the run has none.

    Raises:
        RunDirError: the file is unreadable or not data statistics.
    """
    return _read(Path(run_dir), DATA_STATS, DataStats.from_dict)


def read_model_summary(run_dir: Path) -> ModelSummary | None:
    """``model_summary.json``, or None when the run has none.

    Raises:
        RunDirError: the file is unreadable or not a model summary.
    """
    return _read(Path(run_dir), MODEL_SUMMARY, ModelSummary.from_dict)


def _read(run_dir: Path, name: str, parse):
    path = run_dir / name
    if not path.is_file():
        return None
    payload = RunDir(run_dir).read_json(path)
    try:
        return parse(payload)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunDirError(f"{path}: not what fmtrain writes there ({type(exc).__name__}: {exc}); "
                          "the run directory may be damaged") from None


def _count(weights) -> int:
    total = 0
    for weight in weights:
        size = 1
        for dim in weight.shape:
            size *= int(dim)
        total += size
    return total


def _output_shape(layer) -> str | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError, RuntimeError):  # a layer called more than once, or never
        return None
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return ", ".join(_shape_text(s) for s in shape)
    return _shape_text(shape)


def _shape_text(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in shape) + ")"
