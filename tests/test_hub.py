"""model.type: hub — a tiny KerasHub BERT preset fine-tuned, with LoRA and frozen, through fmtrain's own loop.

The preset is built offline (tests/hub_presets.py): random weights, one layer, a vocabulary from the
generated text, so "learns" means the fine-tuning itself found the keyword rule.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tf

pytest.importorskip("keras_hub")

from typer.testing import CliRunner  # noqa: E402

from fmtrain.cli import app  # noqa: E402

TEXTS = np.array(["the film was good", "the plot was awful", "a superb story and music", "weak ending"],
                 dtype=object)


def _config(tmp_path: Path, name: str, csv_path: Path, preset, *, epochs: int = 4, **model) -> Path:
    config = {
        "name": name, "seed": 3,
        "data": {"source": "text_csv", "path": str(csv_path), "test_split": 0.25, "batch_size": 16},
        "model": {"type": "hub", "task": "text_classifier", "preset": str(preset), "sequence_length": 16, **model},
        "optimizer": {"name": "adam", "learning_rate": 0.002},
        "metrics": ["accuracy"],
        "train": {"epochs": epochs, "jit_compile": False},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, [*args])


def _probabilities(run_dir: Path) -> np.ndarray:
    """What the run's saved model predicts for TEXTS, tokenized by the preprocessor saved inside it."""
    from fmtrain.config import load_config
    from fmtrain.evaluate import load_run_model
    from fmtrain.models.hub import saved_preprocessor, tokenize
    from fmtrain.runs import RunDir

    load_config(run_dir / "config.yaml")
    model = load_run_model(RunDir(run_dir))
    return np.asarray(model(tokenize(saved_preprocessor(model), TEXTS), training=False))


def test_bert_fine_tunes_and_eval_tokenizes_with_the_saved_preprocessor(tmp_path, hub_sentiment):
    csv_path, preset = hub_sentiment
    copy = shutil.copytree(preset, tmp_path / "preset")
    run = tmp_path / "run"
    result = _invoke("fit", str(_config(tmp_path, "bert", csv_path, copy)), "--run-dir", str(run), "--quiet")
    assert result.exit_code == 0, result.output
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert final["test"]["accuracy"] >= 0.9  # chance is 0.5 (balanced classes)

    shutil.rmtree(copy)  # eval needs nothing but the run: the tokenizer is saved in model.keras
    result = _invoke("eval", str(run), "--quiet")
    assert result.exit_code == 0, result.output
    evaluated = json.loads((run / "eval-test.json").read_text())["metrics"]
    assert evaluated["accuracy"] == pytest.approx(final["test"]["accuracy"])
    assert evaluated["loss"] == pytest.approx(final["test"]["loss"], abs=1e-6)
