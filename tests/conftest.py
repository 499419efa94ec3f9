"""Shared fixtures. TensorFlow tests import it themselves (and carry the ``tf`` marker)."""

from __future__ import annotations

import os

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _plan_cache_in_tmp(tmp_path_factory):
    """Plan caches (fmtrain/engine/plan_cache.py) go to a per-session folder, never ~/.cache;
    processes the tests start inherit it."""
    saved = os.environ.get("FMTRAIN_CACHE_DIR")
    os.environ["FMTRAIN_CACHE_DIR"] = str(tmp_path_factory.mktemp("fmtrain-cache"))
    yield
    if saved is None:
        os.environ.pop("FMTRAIN_CACHE_DIR", None)
    else:
        os.environ["FMTRAIN_CACHE_DIR"] = saved


# --------------------------------------------------------------------------- KerasHub presets (tests/hub_presets.py)


@pytest.fixture(scope="session")
def hub_sentiment(tmp_path_factory):
    """A generated two-class text task as text_csv (400 rows) and a tiny BERT classifier preset whose
    vocabulary holds its words: ``(csv_path, preset_dir)``."""
    from hub_presets import bert_classifier_preset, sentiment_rows, write_text_csv

    tmp = tmp_path_factory.mktemp("hub-sentiment")
    rows = sentiment_rows(400)
    csv_path = write_text_csv(tmp / "sentiment.csv", rows)
    return csv_path, bert_classifier_preset(tmp / "bert_tiny", [text for text, _ in rows])


@pytest.fixture(scope="session")
def hub_resnet_preset(tmp_path_factory):
    """A tiny ResNet image classifier preset for 8×8 grey images (digits)."""
    from hub_presets import resnet_classifier_preset

    return resnet_classifier_preset(tmp_path_factory.mktemp("hub-resnet") / "resnet_tiny")


@pytest.fixture(scope="session")
def hub_config_presets(tmp_path_factory):
    """Offline stand-ins for the KerasHub presets configs/bert_finetune.yaml and configs/vit_finetune.yaml
    name (bert_tiny_en_uncased, vit_base_patch16_224_imagenet): ``{"bert": DIR, "vit": DIR}``, tiny and random."""
    from hub_presets import bert_classifier_preset, sentiment_rows, vit_classifier_preset

    tmp = tmp_path_factory.mktemp("hub-config-presets")
    return {"bert": bert_classifier_preset(tmp / "bert", [text for text, _ in sentiment_rows(50)]),
            "vit": vit_classifier_preset(tmp / "vit")}


@pytest.fixture(scope="session")
def small_digits_run(tmp_path_factory):
    """One finished run of a small digits MLP (1 epoch, 20% test split), for the tests that read a run
    (predict, export) without changing it."""
    from typer.testing import CliRunner

    from fmtrain.cli import app

    tmp = tmp_path_factory.mktemp("digits")
    (tmp / "c.yaml").write_text(
        "name: d\ndata: {source: digits, test_split: 0.2}\npreprocess: [{rescale: {scale: 0.0625}}]\n"
        "model: {type: mlp, hidden_units: [16]}\ntrain: {epochs: 1, jit_compile: false}\n"
    )
    result = CliRunner().invoke(app, ["fit", str(tmp / "c.yaml"), "--run-dir", str(tmp / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    """One finished run of a tiny MLP on 8×8 shape images (image_folder, 1 epoch, 25% test split), for the
    tests that read an image run (eval's run folders and --data files, predict on loose images). They may
    add eval results to it; a test that changes anything else copies it first."""
    from shape_images import shape_images
    from typer.testing import CliRunner

    from fmtrain.cli import app

    tmp = tmp_path_factory.mktemp("images")
    shape_images(tmp / "train", (8, 8))
    (tmp / "c.yaml").write_text(
        "name: shapes\ndata: {source: image_folder, path: train, test_split: 0.25, batch_size: 4}\n"
        "preprocess: [{rescale: {scale: 0.0039}}]\nmodel: {type: mlp, hidden_units: [4]}\n"
        "train: {epochs: 1, jit_compile: false}\n"
    )
    result = CliRunner().invoke(app, ["fit", str(tmp / "c.yaml"), "--run-dir", str(tmp / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp / "run"
