"""The training engine on tiny synthetic tasks: it learns, compiles once, and is exact."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")

from stopping import StopAt  # noqa: E402

from fmtrain.config.schema import MetricConfig  # noqa: E402
from fmtrain.engine.callbacks import CheckpointCallback  # noqa: E402
from fmtrain.engine.checkpoints import CheckpointManager, load_checkpoint  # noqa: E402
from fmtrain.engine.trainer import Trainer  # noqa: E402
from fmtrain.errors import Interrupted, TrainingFailed  # noqa: E402
from fmtrain.losses import build_loss  # noqa: E402
from fmtrain.metrics import MetricContext, build_metrics  # noqa: E402


def _blobs(n=300, classes=3, seed=0):
    """Well-separated Gaussian blobs: any working classifier gets them right."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (classes, 2))
    y = rng.integers(0, classes, n).astype(np.int32)
    x = (centers[y] + rng.normal(0, 0.5, (n, 2))).astype(np.float32)
    return x, y


def _trainer(jit=False, steps="auto", metrics=("accuracy",), classes=3, seed=0, lr=0.05):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(hidden))
    ctx = MetricContext("classification", classes, False, classes)
    return Trainer(model, keras.optimizers.Adam(lr), build_loss("sparse_categorical_crossentropy", {}),
                   build_metrics([MetricConfig(name=m) for m in metrics], ctx),
                   jit_compile=jit, steps_per_execution=steps)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("feed", ["graph", "dataset"])
def test_learns_separable_blobs_and_never_retraces(jit, feed):
    x, y = _blobs()
    trainer = _trainer(jit=jit)
    result = trainer.fit(x, y, epochs=6, batch_size=32, seed=1, feed=feed, validation=(x[:50], y[:50]))
    assert result.history[-1]["accuracy"] > 0.95
    assert result.history[-1]["val_accuracy"] > 0.95
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert trainer.trace_counts() == {"train": 1, "eval": 1}


def test_steps_per_call_do_not_change_the_result():
    """1, 4 or all steps per compiled call: the same batches in the same order, the same weights."""
    x, y = _blobs(n=200)
    weights = []
    for steps in (1, 4, "auto"):
        trainer = _trainer(steps=steps)
        trainer.fit(x, y, epochs=2, batch_size=16, seed=3)
        weights.append(trainer.model.get_weights())
    for other in weights[1:]:
        for a, b in zip(weights[0], other, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_graph_and_dataset_feeds_train_on_the_same_batches():
    """Both feeds follow epoch_order(seed, epoch): the same weights after two epochs, whatever the call sizes."""
    x, y = _blobs(n=200)  # 13 batches of 16: the last one is filled from the start of the epoch's order
    weights = {}
    for feed, steps in (("graph", "auto"), ("dataset", 1), ("dataset", 5)):
        trainer = _trainer(steps=steps)
        trainer.fit(x, y, epochs=2, batch_size=16, seed=3, feed=feed)
        weights[feed, steps] = trainer.model.get_weights()
    for key in (("dataset", 1), ("dataset", 5)):
        for a, b in zip(weights["graph", "auto"], weights[key], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=str(key))


@pytest.mark.parametrize("feed, jit, stop_at, position", [
    ("graph", False, 21, (1, 8)), ("graph", True, 21, (1, 8)), ("dataset", False, 21, (1, 8)),
    # A stop on an epoch's last step finishes that epoch (validation, history row) first.
    ("graph", False, 26, (2, 0)),
], ids=["graph", "graph-xla", "dataset", "graph-at-epoch-end"])
def test_interrupted_and_resumed_in_a_new_trainer_equals_uninterrupted(feed, jit, stop_at, position, tmp_path):
    x, y = _blobs(n=200)  # 13 steps per epoch in calls of 4, 4, 4, 1; global step 21 is epoch 2, step 8
    fit = dict(epochs=3, batch_size=16, seed=5, feed=feed, validation=(x[:40], y[:40]))
    uninterrupted = _trainer(jit=jit, steps=4)
    uninterrupted.fit(x, y, **fit)

    interrupted = _trainer(jit=jit, steps=4)
    manager = CheckpointManager(tmp_path)
    saver = CheckpointCallback(manager, every_epochs=None, every_steps=None, monitor="loss", mode="min", config_hash="")
    with pytest.raises(Interrupted):
        interrupted.fit(x, y, callbacks=[StopAt(stop_at), saver], **fit)
    checkpoint = manager.latest()
    assert (checkpoint.state.epoch, checkpoint.state.step, checkpoint.state.global_step) == (*position, stop_at)

    resumed = _trainer(jit=jit, steps=4, seed=99)  # other initial weights: only the checkpoint can make them equal
    result = resumed.fit(x, y, resume=checkpoint, **fit)
    assert (result.resumed_from, result.started_at_step, result.steps_trained) == (checkpoint.path, stop_at,
                                                                                  3 * 13 - stop_at)
    for a, b in zip(uninterrupted.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    def without_timing(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert without_timing(result.history) == without_timing(uninterrupted.history)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_an_update_that_overflows_the_weights_is_caught_before_it_is_checkpointed(jit, tmp_path):
    """A step's loss is computed before its update, so an update to inf leaves the call's loss finite:
    the guard checks the variables too, before any callback can save them."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inputs))
    trainer = Trainer(model, keras.optimizers.SGD(1000.0), build_loss("mse", {}), [], jit_compile=jit,
                      steps_per_execution=2)
    x, y = np.zeros((64, 1), np.float32), np.zeros((64, 1), np.float32)
    x[48:] = 1e18  # the epoch's last batch: loss 1e36 (finite), gradient 2e36, update 2e39 (inf)
    manager = CheckpointManager(tmp_path)
    saver = CheckpointCallback(manager, every_epochs=1, every_steps=2, monitor="loss", mode="min", config_hash="")
    with pytest.raises(TrainingFailed, match="inf or NaN in epoch 1 by step 4"):
        trainer.fit(x, y, epochs=1, batch_size=16, seed=0, shuffle=False, callbacks=[saver])
    assert [path.name for path in manager.checkpoints()] == ["step-000000002.npz"]
    assert np.isfinite(load_checkpoint(manager.checkpoints()[0]).groups["model"][0]).all()


def test_evaluate_is_exact_with_a_partial_last_batch():
    x, y = _blobs(n=103)
    trainer = _trainer(metrics=("accuracy", "f1"))
    probabilities = trainer.model.predict(x, verbose=0)
    expected_loss = float(np.mean(-np.log(probabilities[np.arange(len(y)), y])))
    expected_accuracy = float(np.mean(probabilities.argmax(-1) == y))
    logs = trainer.evaluate(x, y, batch_size=32)  # 103 = 3 full batches + 7 rows
    assert logs["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(expected_accuracy)
    np.testing.assert_allclose(trainer.predict(x, batch_size=32), probabilities, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_evaluate_traces_once_for_every_length_and_stays_exact(jit):
    """A run scores several lengths (validation each epoch, then train, val and test): one trace of the
    model serves them all (each costs up to 0.4 s), and each length is still scored exactly."""
    x, y = _blobs(n=103)
    trainer = _trainer(jit=jit)
    probabilities = trainer.model.predict(x, verbose=0)
    for n in (40, 103, 7, 40):
        expected = float(np.mean(-np.log(probabilities[np.arange(n), y[:n]])))
        assert trainer.evaluate(x[:n], y[:n], batch_size=32)["loss"] == pytest.approx(expected, rel=1e-5)
    assert trainer.trace_counts()["eval"] == 1


def test_f1_precision_recall_match_scikit_learn():
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 500)
    scores = rng.random((500, 4)).astype(np.float32)
    scores[np.arange(500)[:300], y[:300]] += 1.0  # right on 300, random on the rest
    predicted = scores.argmax(-1)
    ctx = MetricContext("classification", 4, False, 4)
    for average in ("macro", "micro", "weighted"):
        configured = [MetricConfig(name=n, args={"average": average}) for n in ("precision", "recall", "f1")]
        references = (precision_score, recall_score, f1_score)
        for metric, reference in zip(build_metrics(configured, ctx), references, strict=True):
            metric.update_state(y, scores)
            assert float(metric.result()) == pytest.approx(reference(y, predicted, average=average), abs=1e-5)


def test_a_diverging_loss_stops_with_a_clear_error():
    x, y = _blobs()
    x[0, 0] = np.nan
    trainer = _trainer()
    with pytest.raises(TrainingFailed, match="learning_rate"):
        trainer.fit(x, y, epochs=1, batch_size=len(y), seed=0)


def test_strict_compile_turns_a_retrace_into_an_error(monkeypatch):
    """A feed that changes its input signature between calls of the same size retraces each time;
    strict_compile stops on the first such retrace instead of silently running slower."""
    import tensorflow as tf

    from fmtrain.engine.feeds import GraphFeed

    x, y = _blobs(n=64)
    trainer = _trainer(steps=2)
    trainer.strict_compile = True
    trainer.fit(x, y, epochs=1, batch_size=16, seed=0)  # 4 steps in calls of 2: one shape, one trace
    assert trainer.trace_counts()["train"] == 1

    original = GraphFeed.args
    calls = []

    def drifting_args(self, start, n):
        x_dev, y_dev, order = original(self, start, n)
        calls.append(n)
        return x_dev, y_dev, tf.cast(order, tf.int64) if len(calls) % 2 else order  # dtype flips per call

    monkeypatch.setattr(GraphFeed, "args", drifting_args)
    with pytest.raises(TrainingFailed, match="strict_compile"):
        trainer.fit(x, y, epochs=1, batch_size=16, seed=0)


def _convnet(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    inner = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model = keras.Model(inputs, inner(keras.layers.MaxPooling2D()(hidden)))
    ctx = MetricContext("classification", 3, False, 3)
    return Trainer(model, keras.optimizers.Adam(0.01), build_loss("sparse_categorical_crossentropy", {}),
                   build_metrics([MetricConfig(name="accuracy")], ctx), jit_compile="auto")


def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def test_convolutions_on_cpu_skip_the_xla_trial_and_say_why():
    """Under jit auto on CPU a convnet never compiles with XLA: XLA is known to lose there."""
    import tensorflow as tf

    if tf.config.get_visible_devices("GPU"):
        pytest.skip("the convolution rule is for CPUs")
    x, y = _images()
    trainer = _convnet()
    result = trainer.fit(x, y, epochs=6, batch_size=8, seed=1)  # 6 calls: long enough to have measured
    assert all(jit is False for _, jit in trainer._train_fns)
    assert result.jit_compile is False
    from fmtrain.fit import _plan_info

    info = _plan_info(result.plan).model_dump()
    assert info["source"] == "rule" and info["jit"] is False and "convolutions on CPU" in info["why"]
    assert info["steps_per_execution"] == 8


def test_a_dense_model_still_measures_both_candidates(monkeypatch):
    from fmtrain.engine import planning

    monkeypatch.setattr(planning, "TRIAL_BUDGET", float("inf"))  # as a run long enough to afford the trial
    x, y = _blobs(n=128)
    trainer = _trainer(jit="auto")
    result = trainer.fit(x, y, epochs=4, batch_size=16, seed=1)
    assert {jit for _, jit in trainer._train_fns} == {True, False}
    assert result.plan.source == "measured" and result.plan.candidates == (False, True)
    assert set(result.plan.per_step) == {True, False}


def test_identical_runs_make_identical_calls_whatever_the_timing(monkeypatch):
    """Call sizes come from the config and data shape, not from how long calls took."""
    from fmtrain.engine.planning import CallPlan

    record = CallPlan.record
    x, y = _blobs(n=4096)
    plans = []
    for scale in (1000.0, 0.001):  # a loaded machine, then an idle one
        monkeypatch.setattr(CallPlan, "record", lambda self, jit, n, s, k=scale: record(self, jit, n, s * k))
        trainer = _trainer(jit=False)
        result = trainer.fit(x, y, epochs=3, batch_size=16, seed=1)
        plans.append((result.steps_per_execution, trainer.trace_counts()))
    assert plans[0] == plans[1]
    assert result.plan.steps_per_execution == result.steps_per_execution


def test_arrays_are_copied_to_the_device_once_per_array_object(monkeypatch):
    """The validation set is padded and copied once for a whole fit, the training set once for two
    fits; another array object, even of the same shape, is copied afresh and gives its own results."""
    from fmtrain.engine import feeds
    from fmtrain.engine import trainer as trainer_module

    copies = {"train": 0, "eval": 0}
    x, y = _blobs(n=200)

    def counting(kind, function):
        def counted(arrays, *args, **kwargs):
            copies[kind] += kind == "eval" or arrays is x  # padded's own copy of the validation set is not x
            return function(arrays, *args, **kwargs)
        return counted

    monkeypatch.setattr(feeds, "to_device", counting("train", feeds.to_device))
    monkeypatch.setattr(trainer_module, "padded", counting("eval", trainer_module.padded))
    x_val, y_val = x[:50], y[:50]
    trainer = _trainer()
    trainer.fit(x, y, epochs=3, batch_size=32, seed=1, validation=(x_val, y_val))
    trainer.fit(x, y, epochs=5, batch_size=32, seed=1, validation=(x_val, y_val), initial_epoch=3)
    assert copies == {"train": 1, "eval": 1}

    seen = trainer.evaluate(x_val, y_val)
    assert copies["eval"] == 1
    shifted = x_val + np.float32(3.0)  # same shape, new object, other values
    moved = trainer.evaluate(shifted, y_val)
    assert copies["eval"] == 2
    assert moved["loss"] != pytest.approx(seen["loss"])
    assert moved == _trainer_with_weights_of(trainer).evaluate(shifted, y_val)


def _trainer_with_weights_of(trained: Trainer) -> Trainer:
    fresh = _trainer()
    fresh.model.set_weights(trained.model.get_weights())
    return fresh


def test_a_device_copy_that_failed_is_made_again_not_reused():
    from fmtrain.engine.feeds import DeviceCopies

    copies, arrays, calls = DeviceCopies(), (np.zeros(3), np.ones(3)), []

    def failing():
        calls.append("failed")
        raise MemoryError("no room")

    with pytest.raises(MemoryError):
        copies.get("train", arrays, failing)
    assert copies.get("train", arrays, lambda: calls.append("made") or "copy") == "copy"
    assert copies.get("train", arrays, lambda: calls.append("again") or "other") == "copy"
    assert calls == ["failed", "made"]
