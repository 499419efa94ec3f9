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
    from fmtrain.runs import RunDir

    cfg = load_config(run_dir / "config.yaml")
    model = load_run_model(RunDir(run_dir))
    return np.asarray(model(cfg.model.encode_inputs(TEXTS, model), training=False))  # predict's seam


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


class _Variables:
    """An engine callback that keeps every model variable's value at the start and the end of training,
    by position in ``model.variables``, and which of them are the backbone's and which train."""

    trainer = None

    def on_train_begin(self, plan):
        from fmtrain.transfer import layers_by_name

        model = self.trainer.model
        backbone = {id(v) for v in layers_by_name(model)["backbone"].variables}
        self.paths = [v.path for v in model.variables]
        self.backbone = [i for i, v in enumerate(model.variables) if id(v) in backbone]
        trainable = {id(v) for v in model.trainable_variables}
        self.trainable = {i for i, v in enumerate(model.variables) if id(v) in trainable}
        self.before = [np.array(v) for v in model.variables]

    def on_train_end(self, history):
        from fmtrain.models.hub import saved_preprocessor, tokenize

        model = self.trainer.model
        self.after = [np.array(v) for v in model.variables]
        self.predicted = np.asarray(model(tokenize(saved_preprocessor(model), TEXTS), training=False))

    def changed(self, index: int) -> bool:
        return not np.array_equal(self.before[index], self.after[index])

    def __getattr__(self, name):  # the other hooks do nothing
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def _fit_in_process(config: Path, run: Path) -> _Variables:
    from fmtrain.config import load_config
    from fmtrain.fit import FitOptions, fit

    seen = _Variables()
    fit(load_config(config), FitOptions(run_dir=run, quiet=True, callbacks=[seen]))
    return seen


def test_lora_trains_only_its_factors_and_survives_save_eval_and_resume(tmp_path, hub_sentiment):
    csv_path, preset = hub_sentiment
    run = tmp_path / "lora"
    seen = _fit_in_process(_config(tmp_path, "lora", csv_path, preset, epochs=2, lora_rank=2), run)

    lora = [i for i in seen.backbone if "lora_kernel" in seen.paths[i]]
    assert lora and [i for i in seen.backbone if i in seen.trainable] == lora  # in the backbone only LoRA trains
    unchanged = [seen.paths[i] for i in seen.backbone if i not in lora and seen.changed(i)]
    assert len(seen.backbone) > 2 * len(lora) and not unchanged  # every other backbone variable: bit for bit
    assert all(seen.changed(i) for i in lora if seen.paths[i].endswith("lora_kernel_b"))  # they start at zero

    trained = sum(seen.before[i].size for i in seen.trainable)  # the LoRA factors and the head
    assert json.loads((run / "metrics.json").read_text())["params"]["trainable"] == trained  # the run says so

    # Saved (Keras merges the factors into the kernels) and reloaded: the same predictions, the same eval.
    np.testing.assert_allclose(_probabilities(run), seen.predicted, rtol=1e-5, atol=1e-6)
    final = json.loads((run / "metrics.json").read_text())["final"]["test"]
    assert _invoke("eval", str(run), "--quiet").exit_code == 0
    assert json.loads((run / "eval-test.json").read_text())["metrics"]["loss"] == pytest.approx(final["loss"], abs=1e-6)

    # Resumed from the first epoch's checkpoint (the factors restored into their layers, keras-hub#2701):
    # the second epoch again ends where the uninterrupted run ended.
    checkpoints = sorted((run / "checkpoints").glob("step-*.npz"))
    assert len(checkpoints) == 2
    checkpoints[-1].unlink()
    result = _invoke("fit", "--resume", str(run), "--quiet")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(_probabilities(run), seen.predicted, rtol=1e-5, atol=1e-6)

    # fmtrain predict on raw text: tokenized by the saved preprocessor, the same probabilities.
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n")
    result = _invoke("predict", str(run), str(tmp_path / "texts.txt"), "--output", str(tmp_path / "p.npz"))
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "p.npz") as predicted:
        np.testing.assert_allclose(predicted["probabilities"], seen.predicted, rtol=1e-5, atol=1e-6)


def test_freeze_backbone_trains_only_the_head(tmp_path, hub_sentiment):
    csv_path, preset = hub_sentiment
    run = tmp_path / "frozen"
    seen = _fit_in_process(_config(tmp_path, "frozen", csv_path, preset, epochs=1, freeze="backbone"), run)
    assert json.loads((run / "metrics.json").read_text())["transfer"]["frozen_at_start"] == ["backbone"]
    assert seen.backbone and not set(seen.backbone) & seen.trainable
    assert not any(seen.changed(i) for i in seen.backbone)
    head = [i for i, path in enumerate(seen.paths) if path.endswith("logits/kernel")]
    assert head and all(seen.changed(i) for i in head)


def _refused(tmp_path: Path, name: str, data: dict, model: dict, preprocess: list | None = None) -> str:
    config = {"name": name, "data": data, "model": model, "preprocess": preprocess or [], "train": {"epochs": 1}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _invoke("fit", str(path), "--run-dir", str(tmp_path / name), "--quiet")
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    assert not (tmp_path / name).exists()  # refused before the run directory is made
    return result.output


def _hub(task: str, preset, **more) -> dict:
    return {"type": "hub", "task": task, "preset": str(preset), **more}


def test_bad_presets_and_lora_are_refused_in_one_line(tmp_path, hub_sentiment, hub_resnet_preset, monkeypatch):
    from fmtrain.models import hub

    csv_path, preset = hub_sentiment
    text = {"source": "text_csv", "path": str(csv_path)}
    digits = {"source": "digits"}
    images = [{"reshape": {"shape": [8, 8, 1]}}]

    out = _refused(tmp_path, "missing", text, _hub("text_classifier", tmp_path / "nope"))
    assert "model.preset: no preset directory at" in out
    out = _refused(tmp_path, "wrong_task", digits, _hub("image_classifier", preset), images)
    assert "BertBackbone" in out and "image_classifier" in out
    out = _refused(tmp_path, "text_of_resnet", text, _hub("text_classifier", hub_resnet_preset))
    assert "no text classifier preprocessor" in out
    out = _refused(tmp_path, "no_lora", digits, _hub("image_classifier", hub_resnet_preset, lora_rank=4), images)
    assert "model.lora_rank: ResNetBackbone has no layer LoRA can adapt" in out

    monkeypatch.setattr(hub, "_online", lambda *args, **kwargs: False)  # offline even where CI has a network
    out = _refused(tmp_path, "by_name", text, _hub("text_classifier", "bert_tiny_en_uncased"))
    assert ("keras_hub.models.TextClassifier.from_preset('bert_tiny_en_uncased').save_to_preset('bert_tiny_en_uncased')"
            in out and "preset: /path/to/bert_tiny_en_uncased" in out)


def test_resnet_preset_classifies_digits_with_its_image_converter(tmp_path, hub_resnet_preset):
    config = {
        "name": "resnet_digits", "seed": 1, "data": {"source": "digits", "test_split": 0.2, "batch_size": 32},
        "preprocess": [{"reshape": {"shape": [8, 8, 1]}}],
        "model": _hub("image_classifier", hub_resnet_preset),
        "optimizer": {"name": "adam", "learning_rate": 0.003}, "train": {"epochs": 3, "jit_compile": False},
    }
    path = tmp_path / "resnet.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert _invoke("fit", str(path), "--run-dir", str(run), "--quiet").exit_code == 0
    test = json.loads((run / "metrics.json").read_text())["final"]["test"]
    assert test["accuracy"] >= 0.8  # ten classes: chance is 0.1
    assert _invoke("eval", str(run), "--quiet").exit_code == 0
    assert json.loads((run / "eval-test.json").read_text())["metrics"]["accuracy"] == pytest.approx(test["accuracy"])

    import keras_hub

    from fmtrain.evaluate import load_run_model
    from fmtrain.runs import RunDir

    model = load_run_model(RunDir(run))  # the preset's converter (scale 1/16) is inside the saved model
    assert any(isinstance(layer, keras_hub.layers.ImageConverter) for layer in model.layers)


@pytest.mark.slow
def test_a_lora_run_killed_after_a_checkpoint_and_resumed_equals_the_uninterrupted_run(tmp_path, hub_sentiment):
    """SIGKILL a real ``fmtrain fit`` of a KerasHub model part-way after its first checkpoint (tests/test_resume.py's
    holding child), resume it, and compare every variable of the final checkpoints."""
    import signal

    from test_resume import child_fit

    from fmtrain.engine.checkpoints import load_checkpoint

    csv_path, preset = hub_sentiment
    config = _config(tmp_path, "killed", csv_path, preset, epochs=2, lora_rank=2)
    data = yaml.safe_load(config.read_text())
    data["train"].update(deterministic=True, checkpoint={"every_steps": 5, "keep_last": 20})
    config.write_text(yaml.safe_dump(data))

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _invoke("fit", str(config), "--run-dir", str(whole), "--quiet").exit_code == 0
    with child_fit(tmp_path / "child", 1, config, "--run-dir", killed, "--quiet") as child:
        child.wait_for("paused")
        child.process.send_signal(signal.SIGKILL)
        assert child.process.wait(timeout=60) == -signal.SIGKILL
    assert not (killed / "model.keras").exists()
    result = _invoke("fit", "--resume", str(killed), "--quiet")
    assert result.exit_code == 0, result.output

    def last(run: Path):
        return load_checkpoint(sorted((run / "checkpoints").glob("step-*.npz"))[-1])

    expected, resumed = last(whole), last(killed)
    assert resumed.state.global_step == expected.state.global_step
    for a, b in zip(expected.groups["model"], resumed.groups["model"], strict=True):
        np.testing.assert_array_equal(a, b)
