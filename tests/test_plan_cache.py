"""The persistent plan cache: a measured jit choice is reused by later runs, never an error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fmtrain.engine import plan_cache, planning
from fmtrain.engine.planning import GraphTiming, PlanRecord

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


def test_a_graph_timing_is_kept_without_a_choice_and_a_choice_replaces_it(cache):
    timing = GraphTiming(overhead=0.5, per_step=0.001)
    path = plan_cache.store_timing(SIGNATURE, timing)
    assert plan_cache.load(SIGNATURE) is None  # no decision
    assert plan_cache.load_timing(SIGNATURE) == timing
    assert "jit" not in json.loads(path.read_text())
    assert plan_cache.store(SIGNATURE, MEASURED, timing) == path
    assert plan_cache.load(SIGNATURE).jit is True and plan_cache.load_timing(SIGNATURE) == timing
    assert plan_cache.load_timing({**SIGNATURE, "batch_size": 64}) is None


def _fit(batch_size: int = 16, epochs: int = 4):
    """A tiny dense model trained under jit auto; returns the trainer and its FitResult."""
    keras = pytest.importorskip("keras")
    from fmtrain.config.schema import MetricConfig
    from fmtrain.engine.trainer import Trainer
    from fmtrain.losses import build_loss
    from fmtrain.metrics import MetricContext, build_metrics

    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8)(inputs)))
    trainer = Trainer(model, keras.optimizers.Adam(0.01), build_loss("sparse_categorical_crossentropy", {}),
                      build_metrics([MetricConfig(name="accuracy")], MetricContext("classification", 3, False, 3)),
                      jit_compile="auto")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(128, 2)).astype(np.float32), rng.integers(0, 3, 128).astype(np.int32)
    return trainer, trainer.fit(x, y, epochs=epochs, batch_size=batch_size, seed=1)


@pytest.mark.tf
def test_a_later_run_reuses_the_measured_choice_without_a_trial(cache, monkeypatch):
    """First run (a budget that admits the trial): graph and XLA are timed. A fresh trainer with
    the same architecture and batch reuses the choice (no trial call); another batch size measures again."""
    monkeypatch.setattr(planning, "TRIAL_BUDGET", math.inf)
    first_trainer, first = _fit(16)
    assert first.plan.source == "measured" and len(list((cache / "plans").glob("*.json"))) == 1
    assert [jit for _, jit in first_trainer._train_fns] == [False, True]  # the graph first
    second_trainer, second = _fit(16)
    assert second.plan.source == "cache" and second.plan.jit == first.plan.jit
    assert second.plan.candidates == (first.plan.jit,)
    assert [jit for _, jit in second_trainer._train_fns] == [first.plan.jit]  # nothing else compiled
    _, other = _fit(32)
    assert other.plan.source == "measured"


@pytest.mark.tf
def test_a_run_too_short_for_the_trial_never_compiles_xla_and_caches_no_choice(cache, monkeypatch):
    """32 steps of a tiny model: XLA's compile cannot fit in 10% of the run. The run trains on the
    graph only, says why, and stores the graph's timing, not a choice: an identical run makes the
    same plan from it, and a run whose budget admits the trial still measures."""
    trainer, first = _fit()
    assert [jit for _, jit in trainer._train_fns] == [False]  # XLA never compiled
    assert (first.plan.jit, first.plan.source) == (False, "measured")
    assert first.plan.why.startswith("XLA not tried: est. compile") and "> 10% of the run's est." in first.plan.why
    assert plan_cache.load(first_signature := _signature(trainer)) is None
    assert plan_cache.load_timing(first_signature) is not None
    again_trainer, again = _fit()
    assert [jit for _, jit in again_trainer._train_fns] == [False]
    assert (again.plan.jit, again.plan.steps_per_execution, again.plan.source) == (False, 8, "cache")
    assert again.plan.why.endswith("(graph timing cached by an earlier run)")
    monkeypatch.setattr(planning, "TRIAL_BUDGET", math.inf)  # as a run long enough to afford it
    _, longer = _fit()
    assert longer.plan.source == "measured" and set(longer.plan.per_step) == {False, True}
    assert plan_cache.load(first_signature) is not None  # now decided


def _signature(trainer):
    return plan_cache.model_signature(trainer.parts, batch_size=16, feed="graph")
