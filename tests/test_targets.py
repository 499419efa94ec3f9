"""Regression targets with several columns: one output unit per column, each column learned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fmtrain.data import DataInfo

ROOT = Path(__file__).resolve().parents[1]
# Two linear functions of three inputs, on different scales, so a single output unit fits neither.
WEIGHTS = np.array([[2.0, -1.0], [0.5, 3.0], [-1.5, 0.25]], np.float32)
OFFSETS = np.array([10.0, -5.0], np.float32)


def _two_columns(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    return x, x @ WEIGHTS + OFFSETS


def _config(tmp_path: Path, model: str = "{type: mlp, hidden_units: [32]}") -> Path:
    x, y = _two_columns(800, seed=0)
    np.savez(tmp_path / "two.npz", x=x, y=y)
    config = {
        "name": "two_targets", "seed": 3,
        "data": {"source": "npz", "path": str(tmp_path / "two.npz"), "test_split": 0.2, "batch_size": 32},
        "model": yaml.safe_load(model),
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "loss": "mse", "metrics": ["mae"], "train": {"epochs": 40},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_label_shape_round_trips_and_old_files_read_as_scalar_labels():
    info = DataInfo(source="s", task="regression", num_classes=None, class_names=None, feature_names=None,
                    input_shape=(3,), encoders={}, label_shape=(2,))
    saved = json.loads(json.dumps(info.to_dict()))

    assert saved["label_shape"] == [2]
    assert DataInfo.from_dict(saved) == info
    del saved["label_shape"]  # a data_info.json written before the field existed
    assert DataInfo.from_dict(saved).label_shape == ()


@pytest.mark.tf
def test_two_target_columns_get_two_output_units_and_both_are_learned(tmp_path):
    pytest.importorskip("tensorflow")
    import keras
    from typer.testing import CliRunner

    from fmtrain.cli import app

    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(_config(tmp_path)), "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output

    assert json.loads((run_dir / "data_info.json").read_text())["label_shape"] == [2]
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    assert model.output_shape == (None, 2)
    x, y = _two_columns(500, seed=1)  # fresh examples from the same two functions
    error = np.sqrt(np.mean((model.predict(x, verbose=0) - y) ** 2, axis=0))
    assert np.all(error < 0.1 * y.std(axis=0)), (error, y.std(axis=0))


@pytest.mark.tf
def test_an_output_layer_narrower_than_the_targets_is_a_data_error(tmp_path):
    pytest.importorskip("tensorflow")
    from typer.testing import CliRunner

    from fmtrain.cli import app

    config = _config(tmp_path, "{type: sequential, layers: [{Dense: {units: 1}}]}")
    result = CliRunner().invoke(app, ["fit", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"])

    assert result.exit_code == 2, result.output
    assert "2 target column(s) per example but the model's output layer has 1 unit(s)" in result.output
    assert not (tmp_path / "run").exists()
