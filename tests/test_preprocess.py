"""Preprocessing steps as Keras layers: fitted on the training split, saved with the model, named inputs."""

from __future__ import annotations

import numpy as np
import pytest

from fmtrain.config.schema import Config, data_config
from fmtrain.data import build
from fmtrain.errors import ConfigError
from fmtrain.models import OutputSpec, build_model, input_dtypes
from fmtrain.preprocess import fit_feature_layers

pytestmark = pytest.mark.tf


def _config(preprocess, model=None, data=None) -> Config:
    return Config.model_validate({
        "data": data or {"source": "iris"},
        "preprocess": preprocess,
        "model": model or {"type": "mlp", "hidden_units": [8]},
    })


def _model(cfg: Config, data, units: int):
    layers = fit_feature_layers(cfg.preprocess, data.train.x, data.info)
    return build_model(cfg.model, input_shape=data.info.input_shape, preprocessing=layers,
                       output=OutputSpec(units, "softmax"), name="t", input_dtypes=input_dtypes(data.train.x),
                       vocab_sizes=data.info.vocab_sizes)


def _chain(layers, x, training):
    import keras

    for layer in layers:
        x = layer(x, training=training)
    return keras.ops.convert_to_numpy(x)


# --------------------------------------------------------------------------- fitted on training data only


def test_text_vectorize_vocabulary_comes_from_the_training_split_only(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"film word{i},{i % 2}\n" for i in range(40)))
    data = build(data_config(source="text_csv", path=str(path), test_split=0.25), seed=0)

    layer, = fit_feature_layers(_config([{"text_vectorize": {"sequence_length": 3}}]).preprocess,
                                data.train.x, data.info)

    train_ids = np.asarray(layer(data.train.x))
    test_ids = np.asarray(layer(data.test.x))
    assert (train_ids[:, 1] >= 2).all()  # each training row's own word is in the vocabulary
    assert (test_ids[:, 1] == 1).all()  # a word seen only in the test split is out of vocabulary
    assert (train_ids[:, 0] == test_ids[0, 0]).all() and (train_ids[:, 2] == 0).all()  # 'film', then padding


def test_lookup_maps_values_unseen_in_training_to_the_oov_index():
    steps = _config([{"lookup": {}}]).preprocess

    strings, = fit_feature_layers(steps, np.array(["paris", "lyon", "paris"], dtype=object), None)
    ids, = fit_feature_layers(steps, np.array([[3], [5], [5]], dtype=np.int64), None)

    assert np.asarray(strings(np.array(["oslo", "paris"]))).tolist()[0] == 0
    assert np.asarray(strings(np.array(["paris"]))).item() > 0
    assert np.asarray(ids(np.array([[7], [5]], dtype=np.int32))).ravel().tolist()[0] == 0


def test_lookup_one_hot_has_one_column_per_training_value_and_one_for_unseen():
    steps = _config([{"lookup": {"output_mode": "one_hot"}}]).preprocess
    layer, = fit_feature_layers(steps, np.array(["a", "b", "c", "a"], dtype=object), None)

    out = np.asarray(layer(np.array(["c", "zzz"])))

    assert out.shape == (2, 4) and out[1, 0] == 1 and out.sum(axis=1).tolist() == [1, 1]


# --------------------------------------------------------------------------- saved with the model


TEXT_MODELS = {
    "int ids": ([{"text_vectorize": {"sequence_length": 8, "max_tokens": 300}}],
                {"type": "sequential", "layers": [{"CategoryEncoding": {"num_tokens": 300, "output_mode": "count"}},
                                                  {"Dense": {"units": 2, "activation": "softmax"}}]}),
    "tf-idf bigrams": ([{"text_vectorize": {"output_mode": "tf_idf", "ngrams": 2, "max_tokens": 60}}], None),
    "lookup one-hot": ([{"lookup": {"output_mode": "one_hot", "max_tokens": 50}}], None),
}


@pytest.mark.parametrize("steps, model", TEXT_MODELS.values(), ids=TEXT_MODELS.keys())
def test_text_models_reload_in_safe_mode_and_predict_identically_on_new_text(tmp_path, steps, model):
    import keras

    data = build(data_config(source="synthetic_sentiment", options={"n": 80}), seed=0)
    original = _model(_config(steps, model), data, units=2)
    new_text = np.array(["never seen words here", "great great", ""], dtype=object)

    original.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)

    for x in (data.test.x, new_text):
        np.testing.assert_array_equal(original.predict(x, verbose=0), reloaded.predict(x, verbose=0))


def test_a_multi_input_model_with_a_chain_per_input_reloads_identically(tmp_path):
    import keras

    data = build(data_config(source="synthetic_multimodal", options={"n": 60}), seed=0)
    cfg = _config([
        {"rescale": {"input": "image", "scale": 1 / 255}},
        {"augment": {"input": "image", "flip": "horizontal", "rotation": 0.05, "zoom": 0.1, "crop": [12, 12]}},
        {"resize": {"input": "image", "size": [8, 8]}},
        {"text_vectorize": {"input": "text", "output_mode": "multi_hot", "max_tokens": 40}},
        {"standardize": {"input": "numeric"}},
    ])
    original = _model(cfg, data, units=4)
    layer_names = {type(layer).__name__ for layer in original.layers}
    assert {"RandomFlip", "RandomCrop", "Resizing", "TextVectorization", "Normalization"} <= layer_names

    original.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)

    np.testing.assert_allclose(original.predict(data.test.x, verbose=0), reloaded.predict(data.test.x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_standardize_on_one_input_is_fitted_on_that_inputs_training_rows():
    data = build(data_config(source="synthetic_multimodal", options={"n": 60}), seed=0)
    cfg = _config([{"standardize": {"input": "numeric"}}])

    chains = fit_feature_layers(cfg.preprocess, data.train.x, data.info)

    assert sorted(chains) == ["image", "numeric", "text"] and chains["image"] == [] and chains["text"] == []
    out = np.asarray(chains["numeric"][0](data.train.x["numeric"]))
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-3)


def test_builders_that_ask_receive_the_vocabulary_sizes(monkeypatch):
    from fmtrain.models.registry import MODELS
    from fmtrain.registry import Entry

    seen = {}
    mlp = MODELS.get("mlp")

    def build_recording(params, inputs, output, *, vocab_sizes=None):
        seen.update(vocab_sizes)
        import keras

        return mlp.build(params, {k: keras.ops.cast(v[:, None], "float32") for k, v in inputs.items()}, output)

    monkeypatch.setitem(MODELS._entries, "mlp", Entry("mlp", build_recording, mlp.params, mlp.summary))
    data = build(data_config(source="synthetic_ratings", options={"num_users": 5, "num_items": 6, "per_user": 3},
                            split="leave_last_per_user"), seed=0)

    cfg = _config([])
    monkeypatch.setattr(type(cfg.model), "uses_vocab_sizes", True)  # the model type declares that it asks
    _model(cfg, data, units=1)

    assert seen == {"user": 6, "item": 7}


# --------------------------------------------------------------------------- images


def test_augmentation_changes_images_only_when_training():
    images = np.random.default_rng(0).random((4, 16, 16, 3)).astype(np.float32)
    cfg = _config([{"augment": {"flip": "horizontal_and_vertical", "rotation": 0.2, "zoom": 0.2}}])
    layers = fit_feature_layers(cfg.preprocess, images, None)

    np.testing.assert_array_equal(_chain(layers, images, training=False), images)
    assert not np.allclose(_chain(layers, images, training=True), images)


def test_crop_is_a_random_window_in_training_and_the_central_one_in_evaluation():
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    layers = fit_feature_layers(_config([{"augment": {"crop": [8, 8]}}]).preprocess, images, None)

    training = [_chain(layers, images, training=True) for _ in range(3)]

    np.testing.assert_array_equal(_chain(layers, images, training=False), images[:, 4:12, 4:12])
    assert all(t.shape == (2, 8, 8, 3) for t in training)
    assert not all(np.array_equal(t, training[0]) for t in training[1:])


def test_resize_makes_every_image_the_configured_size():
    images = np.zeros((3, 12, 10, 1), np.float32)
    layers = fit_feature_layers(_config([{"resize": {"size": [6, 5]}}]).preprocess, images, None)

    assert _chain(layers, images, training=False).shape == (3, 6, 5, 1)


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
def test_image_folder_decodes_exactly_like_keras_load_img(tmp_path, color_mode):
    import keras
    from PIL import Image

    from fmtrain.data.images import read_image

    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (13, 17, 3), dtype=np.uint8)).save(path)

    ours = read_image(path, size=(8, 6), color_mode=color_mode)
    theirs = keras.utils.img_to_array(
        keras.utils.load_img(path, color_mode=color_mode, target_size=(8, 6), interpolation="bilinear"))

    np.testing.assert_array_equal(ours, theirs.astype(np.uint8))


# --------------------------------------------------------------------------- mistakes


MULTIMODAL = {"source": "synthetic_multimodal", "options": {"n": 30}}


@pytest.mark.parametrize("step, x, message", [
    ({"standardize": {}}, "multimodal",
     r"preprocess.0.standardize: the data has several inputs \('image', 'numeric', 'text'\); "
     r"say which this step transforms, e.g. input: image"),
    ({"standardize": {"input": "numbers"}}, "multimodal",
     r"preprocess.0.standardize.input: no input named 'numbers' \(did you mean 'numeric'\?\)"),
    ({"rescale": {"input": "image", "scale": 2}}, "array", r"preprocess.0.rescale.input: the data has a single input"),
    ({"resize": {"size": [4, 4]}}, "array",
     r"preprocess.0.resize: needs images of shape \(height, width, channels\), found examples of shape \[8, 8\] "
     r"and dtype float32; add '- reshape: \{shape: \[8, 8, 1\]\}' before it"),
    ({"text_vectorize": {"input": "numeric"}}, "multimodal",
     r"preprocess.0.text_vectorize \(input 'numeric'\): needs one string per example"),
    ({"standardize": {"input": "text"}}, "multimodal",
     r"preprocess.0.standardize \(input 'text'\): needs numbers, .*text goes through text_vectorize or lookup"),
    ({"augment": {"input": "image", "crop": [32, 32]}}, "multimodal",
     r"crop \[32, 32\] is larger than the images \(16×16\)"),
])
def test_a_step_that_does_not_fit_its_input_names_the_step_and_the_fix(step, x, message):
    data = build(data_config(**MULTIMODAL), seed=0)
    train = data.train.x if x == "multimodal" else np.zeros((5, 8, 8), np.float32)

    with pytest.raises(ConfigError, match=message):
        fit_feature_layers(_config([step]).preprocess, train, data.info)


# --------------------------------------------------------------------------- learnable


def test_a_bag_of_words_model_learns_synthetic_sentiment():
    import keras

    keras.utils.set_random_seed(0)
    data = build(data_config(source="synthetic_sentiment", options={"n": 600}), seed=0)
    model = _model(_config([{"text_vectorize": {"output_mode": "multi_hot", "max_tokens": 250}}],
                           {"type": "mlp", "hidden_units": [16]}), data, units=2)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])

    model.fit(data.train.x, data.train.y, epochs=8, batch_size=32, verbose=0)

    assert model.evaluate(data.test.x, data.test.y, verbose=0)[1] >= 0.95
