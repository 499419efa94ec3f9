"""The persistent plan cache: a measured jit choice is reused by later runs, never an error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmtrain.engine import plan_cache
from fmtrain.engine.planning import PlanRecord

SIGNATURE = {"layers": ["Dense", "Dense"], "batch_size": 32, "device": "cpu:test", "tensorflow": "2.x"}
MEASURED = PlanRecord(jit=True, why="timed: XLA 1 ms/step, graph 2 ms/step", steps_per_execution=64,
                      source="measured", candidates=(True, False), per_step={True: 0.001, False: 0.002})


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FMTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_cache_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("FMTRAIN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert plan_cache.cache_dir() == tmp_path / "xdg" / "fmtrain"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert plan_cache.cache_dir() == tmp_path / "home" / ".cache" / "fmtrain"
    monkeypatch.setenv("FMTRAIN_CACHE_DIR", str(tmp_path / "mine"))
    assert plan_cache.cache_dir() == tmp_path / "mine"


def test_a_stored_plan_comes_back_for_the_same_key_only(cache):
    assert plan_cache.load(SIGNATURE) is None
    path = plan_cache.store(SIGNATURE, MEASURED)
    assert path is not None and path.parent == cache / "plans"
    decision = plan_cache.load(SIGNATURE)
    assert (decision.jit, decision.source) == (True, "cache") and "XLA 1 ms/step" in decision.why
    assert decision.per_step == pytest.approx({True: 0.001, False: 0.002})
    assert plan_cache.load({**SIGNATURE, "batch_size": 64}) is None
    assert plan_cache.clear() == 1 and plan_cache.load(SIGNATURE) is None


@pytest.mark.parametrize("text", ["", "{not json", "[]", '{"version": 1}', '{"version": 1, "jit": "yes"}'])
def test_a_corrupt_file_is_ignored_and_rewritten(cache, text):
    path = cache / "plans" / f"{plan_cache.plan_key(SIGNATURE)}.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert plan_cache.load(SIGNATURE) is None
    plan_cache.store(SIGNATURE, MEASURED)
    assert json.loads(path.read_text())["jit"] is True and plan_cache.load(SIGNATURE).jit is True


def test_an_unwritable_cache_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("FMTRAIN_CACHE_DIR", str(blocker / "cache"))  # a folder inside a file
    assert plan_cache.store(SIGNATURE, MEASURED) is None
    assert plan_cache.load(SIGNATURE) is None


@pytest.mark.tf
def test_a_later_run_reuses_the_measured_choice_without_a_trial(cache):
    """First run: XLA and graph are timed. A fresh trainer with the same architecture and batch
    reuses the choice (no trial call); another batch size measures again."""
    keras = pytest.importorskip("keras")
    from fmtrain.config.schema import MetricConfig
    from fmtrain.engine.trainer import Trainer
    from fmtrain.losses import build_loss
    from fmtrain.metrics import MetricContext, build_metrics

    def fit(batch_size):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(inputs)))
        trainer = Trainer(model, keras.optimizers.Adam(0.01), build_loss("sparse_categorical_crossentropy", {}),
                          build_metrics([MetricConfig(name="accuracy")], MetricContext("classification", 3, False, 3)),
                          jit_compile="auto")
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(128, 2)).astype(np.float32), rng.integers(0, 3, 128).astype(np.int32)
        return trainer, trainer.fit(x, y, epochs=4, batch_size=batch_size, seed=1)

    first_trainer, first = fit(16)
    assert first.plan.source == "measured" and len(list((cache / "plans").glob("*.json"))) == 1
    second_trainer, second = fit(16)
    assert second.plan.source == "cache" and second.plan.jit == first.plan.jit
    assert second.plan.candidates == (first.plan.jit,)
    assert [jit for _, jit in second_trainer._train_fns] == [first.plan.jit]  # nothing else compiled
    _, other = fit(32)
    assert other.plan.source == "measured"
