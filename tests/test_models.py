"""The model families: each builds, saves and reloads exactly; bad combinations name their key; they learn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

pytestmark = pytest.mark.tf

keras = pytest.importorskip("keras")

from typer.testing import CliRunner  # noqa: E402

from fmtrain.cli import app  # noqa: E402
from fmtrain.config import validate_config  # noqa: E402
from fmtrain.config.schema import MetricConfig  # noqa: E402
from fmtrain.engine.trainer import Trainer  # noqa: E402
from fmtrain.errors import ConfigError  # noqa: E402
from fmtrain.losses import build_loss  # noqa: E402
from fmtrain.metrics import MetricContext, build_metrics  # noqa: E402
from fmtrain.models import MODELS, OutputSpec  # noqa: E402
from fmtrain.models.recommenders import retrieval_towers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEN_CLASSES = OutputSpec(10, "softmax")


def params(model: dict):
    """Validate a model section the way a YAML file is validated."""
    return validate_config({"data": {"source": "digits"}, "model": model}).model


def build(model: dict, shape, dtype="float32", output: OutputSpec = TEN_CLASSES):
    """A keras.Model from a model section, on inputs of ``shape`` (a dict for named inputs)."""
    p = params(model)
    if isinstance(shape, dict):
        dtypes = dtype if isinstance(dtype, dict) else {}
        inputs = {k: keras.Input(shape=s, name=k, dtype=dtypes.get(k, "float32")) for k, s in shape.items()}
    else:
        inputs = keras.Input(shape=shape, dtype=dtype, name="inputs")
    return keras.Model(inputs, MODELS.get(p.type).build(p, inputs, output))


def reload(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def trainer(model, loss: str, metrics: list[str], ctx: MetricContext, lr: float, loss_args=None) -> Trainer:
    return Trainer(model, keras.optimizers.Adam(lr), build_loss(loss, loss_args or {}),
                   build_metrics([MetricConfig(name=m) for m in metrics], ctx))


def ids(rng, n, shape, high):
    return rng.integers(0, high, (n, *shape)).astype(np.int32)


# --------------------------------------------------------------------------- build, save, reload

RNG = np.random.default_rng(0)
CASES = {
    "cnn_grey": ({"type": "cnn", "filters": [4, 8], "dense_units": [8], "dropout": 0.1}, (8, 8), "float32"),
    "cnn_rgb": ({"type": "cnn", "filters": [4], "pool": "avg", "global_pool": "flatten"}, (8, 8, 3), "float32"),
    "resnet": ({"type": "resnet", "depth": [1, 1], "width": 4}, (8, 8, 3), "float32"),
    "vit_cls": ({"type": "vit", "patch_size": 4, "embed_dim": 8, "num_layers": 1, "num_heads": 2}, (8, 8), "float32"),
    "vit_mean": ({"type": "vit", "patch_size": 2, "embed_dim": 8, "num_layers": 1, "num_heads": 2, "pooling": "mean"},
                 (8, 8, 1), "float32"),
    "text_transformer": ({"type": "text_transformer", "vocab_size": 30, "embed_dim": 8, "num_heads": 2},
                         (12,), "int32"),
    "text_cnn": ({"type": "text_cnn", "vocab_size": 30, "embed_dim": 8, "filters": 4}, (12,), "int32"),
    "bilstm": ({"type": "bilstm", "vocab_size": 30, "embed_dim": 8, "units": [4, 4]}, (12,), "int32"),
    "functional": ({"type": "functional", "nodes": [
        {"name": "wide", "layer": {"Dense": {"units": 8, "activation": "relu"}}, "inputs": ["input"]},
        {"name": "deep", "layer": {"Dense": {"units": 8}}, "inputs": ["wide"]},
        {"name": "both", "layer": {"Concatenate": None}, "inputs": ["deep", "input"]},
    ], "outputs": ["both"]}, (5,), "float32"),
    "multimodal_concat": ({"type": "multimodal", "encoders": {
        "image": {"type": "cnn", "filters": [4]},
        "text": {"type": "text_cnn", "vocab_size": 30, "embed_dim": 4, "filters": 2},
        "numeric": {"type": "mlp", "hidden_units": [4]},
    }}, {"image": (8, 8), "text": (12,), "numeric": (3,)}, {"text": "int32"}),
    "multimodal_attention": ({"type": "multimodal", "fusion": "attention", "fusion_dim": 8, "num_heads": 2,
                              "encoders": {
        "image": {"type": "vit", "patch_size": 4, "embed_dim": 8, "num_layers": 1, "num_heads": 2},
        "text": {"type": "text_transformer", "vocab_size": 30, "embed_dim": 8, "num_layers": 1, "num_heads": 2},
        "other_text": {"type": "text_transformer", "vocab_size": 30, "embed_dim": 8, "num_layers": 1, "num_heads": 2},
    }}, {"image": (8, 8), "text": (12,), "other_text": (6,)}, {"text": "int32", "other_text": "int32"}),
    "applications": ({"type": "applications", "backbone": "MobileNetV2", "backbone_args": {"alpha": 0.35}},
                     (32, 32, 3), "float32"),
}


def example_inputs(shape, dtype, n=5):
    if isinstance(shape, dict):
        return {k: example_inputs(s, dtype.get(k, "float32") if isinstance(dtype, dict) else dtype, n)
                for k, s in shape.items()}
    if dtype == "int32":
        return ids(RNG, n, shape, 30)
    return RNG.random((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("case", CASES)
def test_family_builds_predicts_the_task_shape_and_reloads_identically(case, tmp_path):
    model_cfg, shape, dtype = CASES[case]
    model = build(model_cfg, shape, dtype)
    x = example_inputs(shape, dtype)
    before = model.predict(x, verbose=0)
    assert before.shape == (5, 10)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)  # the softmax head the task asked for
    after = reload(model, tmp_path).predict(x, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_recommenders_build_and_reload(tmp_path):
    x = {"user": np.array([0, 1, 2, 3], np.int32), "item": np.array([4, 5, 6, 0], np.int32)}
    shape, dtype = {"user": (), "item": ()}, {"user": "int32", "item": "int32"}
    mf = build({"type": "matrix_factorization", "num_users": 4, "num_items": 7}, shape, dtype, OutputSpec(1, None))
    tower = build({"type": "two_tower", "num_users": 4, "num_items": 7}, shape, dtype, OutputSpec(1, None))
    for model, expected in ((mf, (4, 1)), (tower, (4, 4))):
        before = model.predict(x, verbose=0, batch_size=4)
        assert before.shape == expected
        np.testing.assert_allclose(reload(model, tmp_path).predict(x, verbose=0, batch_size=4), before,
                                   rtol=1e-5, atol=1e-6)
    # Scores are cosine similarities over the temperature (0.1 by default).
    assert np.all(np.abs(tower.predict(x, verbose=0, batch_size=4)) <= 10.0 + 1e-4)


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("case", ["vit_cls", "text_transformer", "multimodal_attention"])
def test_mixed_precision_keeps_the_output_in_float32(case, mixed_bfloat16, tmp_path):
    """What fit does on a recent GPU (train.mixed_precision: auto → bfloat16)."""
    model_cfg, shape, dtype = CASES[case]
    model = build(model_cfg, shape, dtype)
    x = example_inputs(shape, dtype)
    before = model.predict(x, verbose=0)
    assert model.get_layer("output").compute_dtype == "float32"
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)  # the body does run in bfloat16
    assert before.dtype == np.float32 and np.all(np.isfinite(before))
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(reload(model, tmp_path).predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)


def test_recommender_scores_stay_float32_under_mixed_precision(mixed_bfloat16):
    x = {"user": np.array([0, 1, 2, 3], np.int32), "item": np.array([4, 5, 6, 0], np.int32)}
    shape, dtype = {"user": (), "item": ()}, {"user": "int32", "item": "int32"}
    mf = build({"type": "matrix_factorization", "num_users": 4, "num_items": 7, "global_bias": 3.3},
               shape, dtype, OutputSpec(1, None))
    assert mf.predict(x, verbose=0, batch_size=4).dtype == np.float32
    assert all(layer.compute_dtype == "float32" for layer in mf.layers if layer.weights)
    tower = build({"type": "two_tower", "num_users": 4, "num_items": 7}, shape, dtype, OutputSpec(1, None))
    assert tower.get_layer("query_tower").compute_dtype == "bfloat16"
    assert tower.predict(x, verbose=0, batch_size=4).dtype == np.float32


def test_saved_custom_layers_load_in_a_fresh_process_after_ensure_custom_layers(tmp_path):
    """What `fmtrain eval` does: a new process, fmtrain.models imported, then safe loading."""
    model = build(CASES["vit_cls"][0], (8, 8))
    x = example_inputs((8, 8), "float32")
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    script = (
        "import numpy as np, keras, fmtrain.models\n"
        "from fmtrain.models import ensure_custom_layers\n"
        "ensure_custom_layers()\n"
        f"m = keras.saving.load_model(r'{tmp_path / 'model.keras'}', compile=False, safe_mode=True)\n"
        f"y = m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0)\n"
        f"print(float(np.abs(y - np.load(r'{tmp_path / 'y.npy'}')).max()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-5


def test_multimodal_encoders_are_nested_models_named_after_their_inputs():
    model_cfg, shape, dtype = CASES["multimodal_attention"]
    model = build(model_cfg, shape, dtype)
    names = {layer.name for layer in model.layers}
    assert {"image_encoder", "text_encoder", "other_text_encoder", "fused", "output"} <= names
    # Each encoder ends in one feature vector per example, without a head of its own.
    assert model.get_layer("text_encoder").output.shape == (None, 8)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_text_transformer_ignores_padding(pooling):
    """Whatever the model learned for padded positions cannot change a prediction; without pad_id it does."""
    x = np.array([[5, 9, 7, 0, 0, 0, 0, 0], [3, 3, 3, 3, 3, 3, 0, 0]], np.int32)
    for pad_id, unchanged in ((0, True), (None, False)):
        model = build({"type": "text_transformer", "vocab_size": 12, "embed_dim": 8, "num_heads": 2, "num_layers": 2,
                       "pooling": pooling, "pad_id": pad_id}, (8,), "int32")
        before = model.predict(x, verbose=0)
        table = model.get_layer("token_embedding").embeddings
        table.assign(np.concatenate([np.full((1, 8), 3.0, np.float32), np.asarray(table)[1:]]))
        after = model.predict(x, verbose=0)
        assert np.allclose(before, after, atol=1e-5) == unchanged


def test_vocab_size_auto_is_read_from_the_text_vectorization_step():
    texts = np.array(["good movie", "bad movie", "a very good film indeed"], dtype=object)
    vectorize = keras.layers.TextVectorization(output_sequence_length=6)
    vectorize.adapt(texts)
    inputs = keras.Input(shape=(), dtype="string")
    p = params({"type": "text_transformer", "embed_dim": 8, "num_heads": 2, "num_layers": 1})
    model = keras.Model(inputs, MODELS.get("text_transformer").build(p, vectorize(inputs), OutputSpec(2, "softmax")))
    assert model.get_layer("token_embedding").input_dim == vectorize.vocabulary_size() == 9  # 7 words, padding, OOV
    assert model.predict(texts, verbose=0).shape == (3, 2)


def test_auto_sizes_come_from_the_vocabularies_build_model_passes():
    from fmtrain.models import build_model

    model = build_model(params({"type": "matrix_factorization"}), input_shape={"user": (), "item": ()},
                        preprocessing={}, output=OutputSpec(1, None), name="mf",
                        input_dtypes={"user": "int32", "item": "int32"}, vocab_sizes={"user": 5, "item": 7})
    assert model.get_layer("user_factors").input_dim == 5
    assert model.get_layer("item_factors").input_dim == 7


def test_frozen_backbone_with_local_weights_loads_them_and_trains_only_the_head(tmp_path):
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    source.save_weights(tmp_path / "backbone.weights.h5")
    model = build({"type": "applications", "backbone": "MobileNetV2", "backbone_args": {"alpha": 0.35},
                   "weights": str(tmp_path / "backbone.weights.h5"), "trainable": False}, (32, 32))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    for loaded, saved in zip(backbone.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)
    assert [w.name for w in model.trainable_weights] == ["kernel", "bias"]  # the output layer only
    assert model.predict(example_inputs((32, 32), "float32"), verbose=0).shape == (5, 10)


# --------------------------------------------------------------------------- errors name their key


def config_error(model: dict, shape=None, dtype="float32") -> str:
    """The one-line message a user sees, from validation or (given a shape) from building."""
    with pytest.raises(ConfigError) as caught:
        build(model, shape, dtype) if shape is not None else params(model)
    return str(caught.value)


@pytest.mark.parametrize("case", ["functional", "multimodal_attention"])
def test_resolved_config_reads_back_the_same(case):
    """fmtrain writes the resolved config to the run and eval validates it again."""
    cfg = validate_config({"data": {"source": "digits"}, "model": CASES[case][0]})
    assert validate_config(cfg.to_yaml_dict()) == cfg


def test_patch_size_that_does_not_divide_the_image_names_the_key():
    message = config_error({"type": "vit", "patch_size": 3}, (8, 8))
    assert message.startswith("model.patch_size: 3 does not divide the 8×8 image")
    assert "[1, 2, 4, 8]" in message


def test_encoder_errors_name_the_encoder():
    model = {"type": "multimodal", "encoders": {"image": {"type": "vit", "patch_size": 3}}}
    assert config_error(model, {"image": (8, 8)}).startswith("model.encoders.image.patch_size: 3 does not divide")
    assert "model.encoders.img: the data has no input 'img' (did you mean 'image'?)" in config_error(
        {"type": "multimodal", "encoders": {"img": {"type": "cnn"}}}, {"image": (8, 8)})
    assert "model.encoders: no encoder for input 'extra'" in config_error(
        {"type": "multimodal", "encoders": {"image": {"type": "cnn"}}}, {"image": (8, 8), "extra": (3,)})
    assert "model.encoders.image.type: unknown model type 'two_towr'" in config_error(
        {"type": "multimodal", "encoders": {"image": {"type": "two_towr"}}})
    assert "model.encoders.image.filtres: unknown key 'filtres' (did you mean 'filters'?)" in config_error(
        {"type": "multimodal", "encoders": {"image": {"type": "cnn", "filtres": [8]}}})


def test_functional_graph_errors_are_caught_when_validating():
    def graph(*nodes, outputs=("b",)):
        return {"type": "functional", "outputs": list(outputs), "nodes": [
            {"name": name, "layer": {"Dense": {"units": 4}}, "inputs": list(refs)} for name, refs in nodes]}

    message = config_error(graph(("dense", ["input"]), ("b", ["dens"])))
    assert message.startswith("model.nodes: ")
    assert "nodes.1 ('b') takes input 'dens', which is neither a node nor an input (did you mean 'dense'?)" in message
    assert "the nodes form a cycle: a → b → a" in config_error(graph(("a", ["input", "b"]), ("b", ["a"])))
    assert config_error(graph(("b", ["input"]), outputs=["bb"])).startswith(
        "model.outputs: 'bb' is not a node (did you mean 'b'?)")
    assert "model.outputs: nodes ['spare'] feed no output" in config_error(
        graph(("b", ["input"]), ("spare", ["input"])))
    assert "unknown Keras layer 'Dnse' (did you mean 'Dense'?)" in config_error(
        {"type": "functional", "outputs": ["a"], "nodes": [{"name": "a", "layer": {"Dnse": {}}, "inputs": ["input"]}]})
    assert "model.nodes: no node takes input 'extra'" in config_error(
        {**graph(("b", ["input"])), "inputs": ["input", "extra"]})
    two_inputs = {**graph(("b", ["numeric"])), "inputs": ["numeric"]}
    assert config_error(two_inputs, {"numeric": (3,), "text": (4,)}).startswith(
        "model.inputs: the graph does not use the data's input 'text'")
    bad_kwarg = graph(("b", ["input"]))
    bad_kwarg["nodes"][0]["layer"] = {"Dense": {"unit": 4}}
    assert config_error(bad_kwarg, (5,)).startswith("model.nodes.0.layer.Dense: ")


@pytest.mark.parametrize("model, shape, dtype, expected", [
    ({"type": "cnn", "filters": [4, 4, 4, 4]}, (8, 8), "float32",
     "model.filters: 4 pooled blocks shrink the 8×8 image"),
    ({"type": "cnn"}, (64,), "float32", "model.type: cnn needs images shaped (H, W) or (H, W, C)"),
    ({"type": "text_transformer"}, (12,), "int32", "model.vocab_size: auto reads the number of token ids"),
    ({"type": "text_cnn", "vocab_size": 9}, (12,), "string",
     "model.type: text_cnn needs token ids, but the input is text"),
    ({"type": "matrix_factorization", "num_users": 3, "num_items": 3}, {"user": (), "itm": ()}, "int32",
     "model.item_input: the data has no input 'item' (did you mean 'itm'?)"),
    ({"type": "matrix_factorization", "num_users": 3, "num_items": 3}, {"user": (), "item": ()}, "int32",
     "model.type: matrix_factorization predicts one score per (user, item) pair, but the task needs 10 outputs"),
    ({"type": "two_tower"}, {"user": (), "item": ()}, "int32", "model.num_users: auto reads the number of user ids"),
    ({"type": "applications", "backbone": "MobileNetV2", "weights": "/no/such/file.h5"}, (32, 32, 3), "float32",
     "model.weights: file not found: /no/such/file.h5"),
])
def test_build_time_errors_name_the_key(model, shape, dtype, expected):
    assert config_error(model, shape, dtype).startswith(expected)


@pytest.mark.parametrize("model, expected", [
    ({"type": "applications", "backbone": "MobileNetV2", "weights": "imagenet"},
     "model.weights: fmtrain does not download weights"),
    ({"type": "applications", "backbone": "MobileNetV9"}, "model.backbone: Input should be 'ConvNeXtBase'"),
    ({"type": "vit", "patch_size": 2, "embed_dim": 30, "num_heads": 4}, "num_heads (4) must divide embed_dim (30)"),
    ({"type": "cnn", "activation": "rleu"}, "model.activation: unknown activation 'rleu' (did you mean 'relu'?)"),
    ({"type": "text_transformer", "vocab_size": 1}, "vocab_size must be at least 2"),
])
def test_validation_errors_name_the_key(model, expected):
    assert expected in config_error(model)


# --------------------------------------------------------------------------- learning


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cnn_learns_digits_from_yaml_and_eval_reproduces_it(tmp_path):
    config = write(tmp_path / "digits_cnn.yaml", """
name: digits_cnn
data: {source: digits, test_split: 0.2, batch_size: 32}
preprocess: [{rescale: {scale: 0.0625}}]
model: {type: cnn, filters: [16, 32]}
optimizer: {name: adam, learning_rate: 0.003}
metrics: [accuracy]
train: {epochs: 15}
""")
    runner = CliRunner()
    run_dir = tmp_path / "run"
    fitted = runner.invoke(app, ["fit", str(config), "--run-dir", str(run_dir), "--quiet",
                                 "--expect", "test.accuracy>=0.9"], catch_exceptions=False)
    assert fitted.exit_code == 0, fitted.output
    accuracy = json.loads((run_dir / "metrics.json").read_text())["final"]["test"]["accuracy"]
    print(f"cnn digits test accuracy {accuracy:.3f}")
    assert accuracy >= 0.9
    evaluated = runner.invoke(app, ["eval", str(run_dir), "--quiet"], catch_exceptions=False)
    assert evaluated.exit_code == 0, evaluated.output
    evaluated_metrics = json.loads((run_dir / "eval-test.json").read_text())["metrics"]
    assert evaluated_metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def digits_split():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images / 16).astype(np.float32), digits.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))
    return (x[order[360:]], y[order[360:]]), (x[order[:360]], y[order[:360]])


def test_vit_learns_digits():
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = digits_split()
    model = build({"type": "vit", "patch_size": 2, "embed_dim": 32, "num_layers": 2, "num_heads": 4}, (8, 8))
    fit = trainer(model, "sparse_categorical_crossentropy", ["accuracy"],
                  MetricContext("classification", 10, False, 10), lr=2e-3)
    fit.fit(x_train, y_train, epochs=12, batch_size=32, seed=0)
    accuracy = fit.evaluate(x_test, y_test)["accuracy"]
    print(f"vit digits test accuracy {accuracy:.3f}")
    assert accuracy >= 0.9


def keyword_task(n, rng, length=16, vocab=40):
    """Class 1 when token 3 occurs, 2 when token 4 occurs, 0 when neither; variable lengths padded with 0."""
    y = rng.integers(0, 3, n).astype(np.int32)
    x = np.zeros((n, length), np.int32)
    for row, label in enumerate(y):
        size = rng.integers(4, length + 1)
        x[row, :size] = rng.integers(5, vocab, size)
        if label:
            x[row, rng.integers(0, size)] = 2 + label
    return x, y


def test_text_transformer_learns_which_keyword_a_text_contains():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = keyword_task(2000, rng), keyword_task(500, rng)
    model = build({"type": "text_transformer", "vocab_size": 40, "embed_dim": 32, "num_layers": 1, "num_heads": 4,
                   "dropout": 0.0}, (16,), "int32", OutputSpec(3, "softmax"))
    fit = trainer(model, "sparse_categorical_crossentropy", ["accuracy"],
                  MetricContext("classification", 3, False, 3), lr=2e-3)
    fit.fit(x_train, y_train, epochs=8, batch_size=64, seed=0)
    accuracy = fit.evaluate(x_test, y_test)["accuracy"]
    print(f"text_transformer keyword test accuracy {accuracy:.3f}")
    assert accuracy >= 0.9


def low_rank_ratings(rng, users=300, items=200, rank=3, observed=0.25, noise=0.2):
    u = rng.normal(0, 1, (users, rank))
    v = rng.normal(0, 1, (items, rank))
    scores = u @ v.T / np.sqrt(rank) + rng.normal(0, 0.3, (users, 1)) + rng.normal(0, 0.3, (1, items))
    mask = rng.random((users, items)) < observed
    user, item = np.nonzero(mask)
    rating = 3.5 + scores[user, item] + rng.normal(0, noise, len(user))
    order = rng.permutation(len(user))
    return user[order].astype(np.int32), item[order].astype(np.int32), rating[order].astype(np.float32)


def test_matrix_factorization_beats_the_global_mean_on_held_out_ratings():
    keras.utils.set_random_seed(0)
    user, item, rating = low_rank_ratings(np.random.default_rng(0))
    test = slice(0, len(user) // 5)
    train = slice(len(user) // 5, None)
    x = {"user": user, "item": item}
    x_train = {k: v[train] for k, v in x.items()}
    x_test = {k: v[test] for k, v in x.items()}
    y_train, y_test = rating[train].reshape(-1, 1), rating[test].reshape(-1, 1)
    model = build({"type": "matrix_factorization", "num_users": 300, "num_items": 200, "embedding_dim": 8,
                   "global_bias": float(y_train.mean())},
                  {"user": (), "item": ()}, "int32", OutputSpec(1, None))
    fit = trainer(model, "mse", ["rmse", "mae"], MetricContext("regression", None, False, 1), lr=0.01)
    fit.fit(x_train, y_train, epochs=20, batch_size=256, seed=0)
    rmse = fit.evaluate(x_test, y_test)["rmse"]
    baseline = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    print(f"matrix factorization test rmse {rmse:.3f} vs global mean {baseline:.3f}")
    assert rmse < 0.5 * baseline


def preference_data(rng, users=1000, items=300, clusters=15, per_user=10, held_out=2, on_taste=0.9):
    """Users and items in taste clusters; each user mostly picks items of their own cluster."""
    user_cluster = rng.integers(0, clusters, users)
    item_cluster = np.arange(items) % clusters
    popularity = rng.zipf(1.5, items).clip(max=50).astype(float)  # some items are picked far more often
    pairs = []
    for u in range(users):
        own = np.flatnonzero(item_cluster == user_cluster[u])
        weights = np.where(item_cluster == user_cluster[u], on_taste / len(own), (1 - on_taste) / (items - len(own)))
        weights = weights * popularity
        picked = rng.choice(items, per_user, replace=False, p=weights / weights.sum())
        pairs += [(u, i, k < per_user - held_out) for k, i in enumerate(picked)]
    user, item, is_train = (np.array(c) for c in zip(*pairs, strict=True))
    return user.astype(np.int32), item.astype(np.int32), is_train.astype(bool)


def recall_at_10(scores: np.ndarray, user: np.ndarray, item: np.ndarray, seen: dict[int, set]) -> float:
    """Share of held-out (user, item) pairs whose item is among the user's 10 best unseen items."""
    hits = 0
    for u, i in zip(user, item, strict=True):
        row = scores[u].copy()
        row[list(seen.get(u, ()))] = -np.inf
        hits += i in np.argsort(-row)[:10]
    return hits / len(user)


def test_two_tower_beats_popularity_on_recall_at_10_over_all_items(tmp_path):
    keras.utils.set_random_seed(0)
    user, item, is_train = preference_data(np.random.default_rng(0))
    x_train = {"user": user[is_train], "item": item[is_train]}
    dummy = np.ones((int(is_train.sum()), 1), np.float32)  # in_batch_softmax pairs rows by position
    model = build({"type": "two_tower", "num_users": 1000, "num_items": 300, "embedding_dim": 32, "tower_units": [],
                   "output_dim": 32, "temperature": 0.1}, {"user": (), "item": ()}, "int32", OutputSpec(1, None))
    fit = trainer(model, "in_batch_softmax", ["recall_at_k"], MetricContext("regression", None, False, 1), lr=0.01)
    history = fit.fit(x_train, dummy, epochs=8, batch_size=128, seed=0).history
    assert history[-1]["recall_at_10"] > history[0]["recall_at_10"]

    seen: dict[int, set] = {}
    for u, i in zip(x_train["user"], x_train["item"], strict=True):
        seen.setdefault(int(u), set()).add(int(i))
    test_user, test_item = user[~is_train], item[~is_train]
    query_tower, candidate_tower = retrieval_towers(reload(model, tmp_path))
    scores = np.asarray(query_tower(np.arange(1000, dtype=np.int32))) @ np.asarray(
        candidate_tower(np.arange(300, dtype=np.int32))).T
    model_recall = recall_at_10(scores, test_user, test_item, seen)
    counts = np.bincount(x_train["item"], minlength=300).astype(float)
    popularity_recall = recall_at_10(np.tile(counts, (1000, 1)), test_user, test_item, seen)
    print(f"two_tower recall@10 over all items {model_recall:.3f} vs popularity {popularity_recall:.3f}")
    assert model_recall > 3 * popularity_recall


def test_in_batch_softmax_and_recall_at_k_score_the_diagonal():
    scores = np.array([[5.0, 1.0, 0.0], [9.0, 2.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    losses = np.asarray(build_loss("in_batch_softmax", {})(None, scores))
    expected = -np.log(np.exp(np.diag(scores)) / np.exp(scores).sum(axis=1))
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    symmetric = np.asarray(build_loss("in_batch_softmax", {"symmetric": True})(None, scores))
    by_column = -np.log(np.exp(np.diag(scores)) / np.exp(scores).sum(axis=0))
    np.testing.assert_allclose(symmetric, (expected + by_column) / 2, rtol=1e-5)
    ctx = MetricContext("regression", None, False, 1)
    recall = {k: build_metrics([MetricConfig(name="recall_at_k", args={"k": k})], ctx)[0] for k in (1, 2)}
    for metric in recall.values():
        metric.update_state(None, scores)
    assert float(recall[1].result()) == pytest.approx(2 / 3)  # row 1's positive ranks second
    assert float(recall[2].result()) == pytest.approx(1.0)
    assert recall[1].name == "recall_at_1"
    with pytest.raises(ValidationError, match="recall_at_k takes no argument 'top'"):
        MetricConfig(name="recall_at_k", args={"top": 3})
