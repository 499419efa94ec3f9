"""``report.mlflow``: log a finished run to an MLflow tracking store.

Everything logged is read from the run directory (like ``fmtrain report``): the flattened
``config.yaml`` as params, ``history.csv`` as per-epoch metrics (step = epoch), the final metrics of
``metrics.json`` as ``final_<split>_<metric>``, the report, ``metrics.json`` and the other run files
as artifacts, and ``model.keras`` as an MLflow Keras model.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fmtrain import __version__
from fmtrain.config.flat import flatten_config
from fmtrain.config.yaml_marks import read_yaml
from fmtrain.errors import ConfigError, FmtrainError, first_line
from fmtrain.report.plots import read_history
from fmtrain.runs import RunDir

if TYPE_CHECKING:
    from fmtrain.config.schema import Config, MlflowConfig

EXTRA = "pip install 'fmtrain[mlflow]'"
# Files of a run directory logged as artifacts when present (plots/ and tensorboard/ as folders).
ARTIFACTS = ("config.yaml", "metrics.json", "history.csv", "environment.json", "data_info.json", "report.md",
             "report.html")
ARTIFACT_FOLDERS = ("plots", "tensorboard")
MAX_PARAM_LENGTH = 6000  # MLflow refuses longer param values


@dataclass(frozen=True)
class MlflowLogged:
    """Where a run went: enough to find it with ``MlflowClient(tracking_uri).get_run(run_id)``."""

    tracking_uri: str
    experiment_id: str
    run_id: str


def require_mlflow(cfg: Config) -> None:
    """Before training: a config with ``report.mlflow`` needs MLflow installed.

    Raises:
        ConfigError: MLflow cannot be imported (names the extra to install).
    """
    if cfg.report.mlflow is None:
        return
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError(f"report.mlflow: MLflow is not installed; install the extra: {EXTRA}") from None


def log_finished_run(run_dir: Path, settings: MlflowConfig, default_experiment: str) -> MlflowLogged:
    """Log the finished run in ``run_dir`` as one new MLflow run.

    Raises:
        FmtrainError: the tracking store refused it (exit 1; the run directory is complete anyway).
    """
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    run = RunDir(run_dir)
    client = mlflow.MlflowClient(settings.tracking_uri)
    name = settings.experiment or default_experiment
    try:
        experiment = client.get_experiment_by_name(name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else client.create_experiment(name, artifact_location=settings.artifact_location))
        created = client.create_run(experiment_id, run_name=f"{default_experiment}/{run.path.name}",
                                    tags={"fmtrain.run_dir": str(run.path.resolve()), "fmtrain.version": __version__})
        run_id = created.info.run_id
        client.log_batch(run_id, params=[Param(k, v) for k, v in _params(run).items()])
        client.log_batch(run_id, metrics=[Metric(k, v, 0, step) for k, v, step in _metrics(run)])
        for file in ARTIFACTS:
            if (run.path / file).is_file():
                client.log_artifact(run_id, str(run.path / file))
        for folder in ARTIFACT_FOLDERS:
            if (run.path / folder).is_dir():
                client.log_artifacts(run_id, str(run.path / folder), artifact_path=folder)
        if settings.log_model:
            _log_model(client, run, run_id)
        client.set_terminated(run_id)
    except MlflowException as exc:
        raise FmtrainError(f"report.mlflow: {settings.tracking_uri}: could not log the run: {first_line(exc)} "
                           f"(the run directory {run.path} is complete)") from None
    return MlflowLogged(settings.tracking_uri, experiment_id, run_id)


def _params(run: RunDir) -> dict[str, str]:
    flat = flatten_config(read_yaml(run.config)[0])
    return {key: (value if isinstance(value, str) else json.dumps(value))[:MAX_PARAM_LENGTH]
            for key, value in flat.items()}


def _metrics(run: RunDir) -> list[tuple[str, float, int]]:
    """(name, value, step): each history.csv column per epoch, then the final metrics at the last epoch."""
    out = []
    history = read_history(run.history) if run.history.is_file() else {}
    epochs = [int(e) for e in history.pop("epoch", [])]
    for column, values in history.items():
        out += [(column, value, epoch) for epoch, value in zip(epochs, values, strict=True) if not math.isnan(value)]
    final = run.read_metrics().final
    last = epochs[-1] if epochs else 0
    for split, values in final.items():
        out += [(f"final_{split}_{metric}", float(value), last) for metric, value in (values or {}).items()]
    return out


def _log_model(client, run: RunDir, run_id: str) -> None:
    """model.keras as an MLflow Keras model under the artifact path ``model`` (``runs:/<id>/model``)."""
    import keras
    import mlflow.keras
    import tensorflow as tf

    from fmtrain.evaluate import load_run_model

    with tempfile.TemporaryDirectory() as folder:
        # Requirements stated, not inferred: inference imports the model again in a new process (seconds).
        mlflow.keras.save_model(load_run_model(run), str(Path(folder) / "model"), pip_requirements=[
            f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}", f"fmtrain=={__version__}"])
        client.log_artifacts(run_id, str(Path(folder) / "model"), artifact_path="model")
