"""Image folders, text, interactions, multi-input records and synthetic sources — without TensorFlow.

Every file is generated in tmp_path: tiny PNGs (Pillow), csv and jsonl text, npz arrays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from fmtrain.config import parse_config_text
from fmtrain.config.schema import data_config
from fmtrain.data import DataInfo, build
from fmtrain.data.ids import UNSEEN
from fmtrain.data.splits import leave_last_per_user
from fmtrain.data.synthetic import COLOR_ON, NEGATIVE, POSITIVE
from fmtrain.errors import ConfigError, DataError


def _png(path, size=(10, 12), color=(255, 0, 0), mode="RGB"):
    """Write a solid ``color`` image of ``size`` = (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


COLORS = {"cat": (255, 0, 0), "dog": (0, 0, 255)}


def _image_folder(root, counts, size=(10, 12)):
    for name, count in counts.items():
        for i in range(count):
            _png(root / name / f"{i}.png", size, COLORS.get(name, (0, 255, 0)))
    return root


def _write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# --------------------------------------------------------------------------- image folders


def test_image_folder_loads_uint8_pixels_with_classes_named_by_sub_folders(tmp_path):
    root = _image_folder(tmp_path / "pets", {"dog": 4, "cat": 6})
    (root / "cat" / "notes.txt").write_text("not an image")  # other files are skipped

    data = build(data_config(source="image_folder", path=str(root), test_split=0), seed=0)

    assert data.info.class_names == ["cat", "dog"]  # sorted folder names, as Keras does
    assert data.train.x.shape == (10, 12, 10, 3) and data.train.x.dtype == np.uint8
    assert data.info.input_shape == (12, 10, 3)
    cats = data.train.x[data.train.y == 0]
    assert len(cats) == 6 and (cats[..., 0] == 255).all() and (cats[..., 2] == 0).all()  # red stays red


def test_image_folder_resizes_to_image_size_and_loads_grayscale(tmp_path):
    root = _image_folder(tmp_path / "pets", {"cat": 2, "dog": 2}, size=(10, 12))
    _png(root / "dog" / "big.png", (40, 30), (0, 0, 255))

    data = build(data_config(source="image_folder", path=str(root), image_size=[8, 6], color_mode="grayscale",
                            test_split=0), seed=0)

    assert data.train.x.shape == (5, 8, 6, 1)


def test_image_folder_of_mixed_sizes_names_the_file_and_data_image_size(tmp_path):
    root = _image_folder(tmp_path / "pets", {"cat": 2, "dog": 1}, size=(10, 12))
    odd = _png(root / "dog" / "odd.png", (40, 30))

    with pytest.raises(DataError, match=rf"{odd}: image is 40×30 pixels .* set data.image_size"):
        build(data_config(source="image_folder", path=str(root)), seed=0)


def test_an_empty_class_folder_is_named(tmp_path):
    root = _image_folder(tmp_path / "pets", {"cat": 2})
    (root / "dog").mkdir()

    with pytest.raises(DataError, match=rf"{root / 'dog'}: class 'dog' has no image files"):
        build(data_config(source="image_folder", path=str(root)), seed=0)


def test_image_folder_without_class_sub_folders_says_how_to_lay_it_out(tmp_path):
    _png(tmp_path / "flat" / "a.png")

    with pytest.raises(DataError, match=r"no class sub-folders \(the image files are directly in it\)"):
        build(data_config(source="image_folder", path=str(tmp_path / "flat")), seed=0)


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "folder not found"),
    (lambda p: _png(p.with_suffix(".png")), "is a file"),
])
def test_image_folder_path_must_be_an_existing_folder(tmp_path, make, message):
    path = make(tmp_path / "missing")

    with pytest.raises(DataError, match=rf"data.path: .*{message}"):
        build(data_config(source="image_folder", path=str(path)), seed=0)


def test_an_unreadable_image_is_named(tmp_path):
    root = _image_folder(tmp_path / "pets", {"cat": 2, "dog": 2})
    broken = root / "dog" / "broken.png"
    broken.write_bytes(b"not a png")

    with pytest.raises(DataError, match=rf"{broken}: not a readable image"):
        build(data_config(source="image_folder", path=str(root)), seed=0)


def test_image_folder_at_eval_maps_folders_to_the_trained_classes(tmp_path):
    train = build(data_config(source="image_folder", path=str(_image_folder(tmp_path / "a", {"cat": 3, "dog": 3}))),
                  seed=0)
    new = _image_folder(tmp_path / "b", {"dog": 2})

    again = build(data_config(source="image_folder", path=str(new), test_split=0), seed=0, encoders=train.info.encoders)

    assert again.train.y.tolist() == [1, 1] and again.info.class_names == ["cat", "dog"]
    with pytest.raises(DataError, match=r"label 'cow' is not one of the 2 classes seen in training"):
        build(data_config(source="image_folder", path=str(_image_folder(tmp_path / "c", {"cow": 1}))),
              seed=0, encoders=train.info.encoders)


# --------------------------------------------------------------------------- text


def test_text_csv_gives_python_strings_and_string_classes(tmp_path):
    path = _write(tmp_path / "reviews.csv", """
        text,stars,label
        "Great film, would watch again",5,pos
        dull and slow,1,neg
        "loved it, truly",4,pos
        "not for me",2,neg
        """)

    data = build(data_config(source="text_csv", path=str(path), test_split=0), seed=0)

    assert data.train.x.ndim == 1 and data.train.x.dtype == object
    assert "Great film, would watch again" in data.train.x.tolist()
    assert data.info.class_names == ["neg", "pos"] and data.info.input_shape == ()


def test_text_csv_label_defaults_to_the_last_column_other_than_the_text(tmp_path):
    path = _write(tmp_path / "r.csv", "label,review\npos,good\nneg,bad\npos,fine\n")

    data = build(data_config(source="text_csv", path=str(path), text="review", test_split=0), seed=0)

    assert sorted(data.train.x.tolist()) == ["bad", "fine", "good"] and data.info.class_names == ["neg", "pos"]


def test_text_csv_without_the_text_column_names_file_key_and_closest(tmp_path):
    path = _write(tmp_path / "r.csv", "txt,label\ngood,pos\n")

    with pytest.raises(DataError, match=rf"{path}: data.text names column 'text'.*did you mean 'txt'"):
        build(data_config(source="text_csv", path=str(path)), seed=0)


def test_text_jsonl_reads_one_object_per_line(tmp_path):
    lines = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}, {"text": "ok", "label": "pos"}]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")

    data = build(data_config(source="text_jsonl", path=str(path), test_split=0), seed=0)

    assert data.train.x.tolist() == ["good", "bad", "ok"] and data.train.y.tolist() == [1, 0, 1]


@pytest.mark.parametrize("second_line, message", [
    ('{"text": "bad", "lable": "neg"}', r":2: no key 'label' \(data.label\) \(did you mean 'lable'\?\)"),
    ('{"text": "bad", "label": "neg"', r":2: not valid JSON"),
    ('["bad", "neg"]', r":2: a JSON list, expected an object"),
    ('{"text": 3, "label": "neg"}', r":2: 'text' is int, expected a string"),
])
def test_text_jsonl_problems_name_the_line(tmp_path, second_line, message):
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "good", "label": "pos"}\n' + second_line + "\n")

    with pytest.raises(DataError, match=rf"{path}{message}"):
        build(data_config(source="text_jsonl", path=str(path)), seed=0)


def test_text_folder_reads_each_file_as_one_document(tmp_path):
    for label, texts in {"neg": ["awful", "boring"], "pos": ["great", "superb", "fine"]}.items():
        (tmp_path / "t" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "t" / label / f"{i}.txt").write_text(text + "\n")

    data = build(data_config(source="text_folder", path=str(tmp_path / "t"), test_split=0), seed=0)

    pairs = sorted(zip(data.train.x.tolist(), data.train.y.tolist(), strict=True))
    assert pairs == [("awful", 0), ("boring", 0), ("fine", 1), ("great", 1), ("superb", 1)]
    assert data.info.class_names == ["neg", "pos"]


# --------------------------------------------------------------------------- interactions


RATINGS = """
    user,item,rating,timestamp
    ann,matrix,5,3
    ann,alien,4,1
    ann,heat,2,2
    bob,matrix,3,5
    bob,heat,4,9
    cid,alien,1,4
    """


def test_interactions_give_int32_user_and_item_ids_and_float_ratings(tmp_path):
    data = build(data_config(source="interactions", path=str(_write(tmp_path / "r.csv", RATINGS)), test_split=0),
                 seed=0)

    x = data.train.x
    assert set(x) == {"user", "item"} and x["user"].dtype == np.int32 and x["item"].dtype == np.int32
    assert data.train.y.dtype == np.float32 and data.info.task == "regression"
    assert data.info.vocab_sizes == {"user": 4, "item": 4}  # 3 users/items + the unseen id 0
    assert x["user"].min() == 1 and data.info.input_shape == {"user": (), "item": ()}


def test_leave_last_per_user_holds_out_each_users_latest_interaction(tmp_path):
    path = _write(tmp_path / "r.csv", RATINGS)

    data = build(data_config(source="interactions", path=str(path), split="leave_last_per_user"), seed=0)

    # ann's latest is matrix (t=3), bob's heat (t=9); cid has one row and keeps it for training.
    users = data.info.encoders.vocabularies["user"][0]
    items = data.info.encoders.vocabularies["item"][0]
    held = sorted((users[u - 1], items[i - 1]) for u, i in zip(data.test.x["user"], data.test.x["item"], strict=True))
    assert held == [("ann", "matrix"), ("bob", "heat")]
    assert len(data.train) == 4 and data.val is None


def test_leave_last_per_user_validation_takes_the_interaction_before(tmp_path):
    path = _write(tmp_path / "r.csv", RATINGS)

    data = build(data_config(source="interactions", path=str(path), split="leave_last_per_user",
                            validation_split=0.1), seed=0)

    # Only ann has three rows: her second latest (heat, t=2) validates.
    assert len(data.val) == 1 and data.val.y.tolist() == [2.0]
    assert (len(data.train), len(data.val), len(data.test)) == (3, 1, 2)


def test_leave_last_per_user_holds_out_exactly_one_row_per_user_with_two_or_more():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 400).astype(str)
    times = rng.random(400)

    plan = leave_last_per_user(users, times, test=True, validation=False)

    names, counts = np.unique(users, return_counts=True)
    assert sorted(users[plan.test].tolist()) == sorted(names[counts >= 2].tolist())
    for user in names[counts >= 2]:
        rows = np.flatnonzero(users == user)
        assert plan.test[np.isin(plan.test, rows)] == rows[np.argmax(times[rows])]
    assert sorted(np.concatenate([plan.train, plan.test]).tolist()) == list(range(400))


def test_leave_last_per_user_without_enough_rows_says_what_to_do():
    with pytest.raises(DataError, match=r"no user has 2 or more rows; use split: random or set data.test_split: 0"):
        leave_last_per_user(np.array(["a", "b"]), None, test=True, validation=False)


def test_interaction_ids_reuse_the_training_vocabularies_and_unseen_ids_are_0(tmp_path):
    trained = build(data_config(source="interactions", path=str(_write(tmp_path / "r.csv", RATINGS)), test_split=0),
                    seed=0)
    new = _write(tmp_path / "new.csv", "user,item,rating\nbob,matrix,4\ndee,alien,3\nann,dune,5\n")

    again = build(data_config(source="interactions", path=str(new), test_split=0), seed=0,
                  encoders=trained.info.encoders)

    bob = trained.train.x["user"][trained.train.y.tolist().index(3.0)]
    assert again.train.x["user"].tolist() == [bob, UNSEEN, again.train.x["user"][2]]
    assert again.train.x["item"][2] == UNSEEN and again.info.vocab_sizes == trained.info.vocab_sizes


def test_interactions_without_ratings_are_implicit_ones_in_file_order(tmp_path):
    path = _write(tmp_path / "clicks.csv", "user,item\na,x\na,y\nb,x\nb,z\n")

    data = build(data_config(source="interactions", path=str(path), split="leave_last_per_user"), seed=0)

    assert data.train.y.tolist() == [1.0, 1.0] and data.test.y.tolist() == [1.0, 1.0]
    assert data.info.encoders.vocabularies["item"] == [["x"]]  # a's last (y) and b's last (z) are held out
    assert data.test.x["item"].tolist() == [UNSEEN, UNSEEN] and UNSEEN not in data.test.x["user"]


def test_interactions_with_iso_timestamps_sort_by_time(tmp_path):
    path = _write(tmp_path / "r.csv", "user,item,timestamp\na,x,2024-05-02\na,y,2024-04-30T10:00:00\n")

    data = build(data_config(source="interactions", path=str(path), split="leave_last_per_user"), seed=0)

    assert data.test.x["item"].tolist() == [UNSEEN]  # x is the latest, so it never reached training


def test_interactions_without_a_user_column_name_the_file(tmp_path):
    path = _write(tmp_path / "r.csv", "usr,item\na,x\n")

    with pytest.raises(DataError, match=rf"{path}: the interactions' user column names column 'user'.*'usr'"):
        build(data_config(source="interactions", path=str(path)), seed=0)


def test_leave_last_per_user_is_only_for_interactions():
    with pytest.raises(ValidationError, match=r"split leave_last_per_user needs user interactions"):
        data_config(source="iris", split="leave_last_per_user")


# --------------------------------------------------------------------------- multi-input records


LISTINGS = """
    area,rooms,city,description,band
    50,2,paris,bright flat,low
    80,3,lyon,large garden,high
    65,2,paris,quiet street,low
    120,5,nice,sea view,high
    70,3,lyon,near station,low
    90,4,paris,top floor,high
    """


def test_csv_inputs_give_named_numeric_category_and_text_inputs(tmp_path):
    path = _write(tmp_path / "l.csv", LISTINGS)
    cfg = data_config(source="csv", path=str(path), label="band", test_split=0,
                     inputs={"numeric": ["area", "rooms"], "category": "city", "text": "description"})

    data = build(cfg, seed=0)

    x = data.train.x
    assert x["numeric"].shape == (6, 2) and x["numeric"].dtype == np.float32
    assert x["category"].shape == (6, 1) and x["category"].dtype == np.int32
    assert x["text"].dtype == object and "bright flat" in x["text"].tolist()
    assert data.info.vocab_sizes == {"category": 4}  # lyon, nice, paris + unseen
    assert data.info.feature_names == ["numeric:area", "numeric:rooms", "category:city", "text:description"]


def test_category_inputs_are_fitted_on_training_rows_and_reused_at_eval(tmp_path):
    path = _write(tmp_path / "l.csv", LISTINGS)
    cfg = data_config(source="csv", path=str(path), label="band", inputs={"category": ["city", "rooms"]},
                     test_split=0.5, split="random")

    data = build(cfg, seed=1)

    vocab = data.info.encoders.vocabularies["category"]
    cities, rooms = vocab
    # Ids of the two columns share one space: city first, then rooms.
    assert data.train.x["category"][:, 0].max() <= len(cities) < data.train.x["category"][:, 1].min()
    new = _write(tmp_path / "new.csv", "area,rooms,city,description,band\n1,9,paris,x,low\n1,2,oslo,y,high\n")
    again = build(cfg.model_copy(update={"path": str(new), "test_split": 0.0}), seed=0,
                  encoders=data.info.encoders)
    paris = 1 + cities.index("paris") if "paris" in cities else UNSEEN
    assert again.train.x["category"][:, 0].tolist() == [paris, UNSEEN]  # oslo was never seen
    assert again.train.x["category"][0, 1] == UNSEEN  # nor 9 rooms


def test_npz_inputs_read_images_numbers_categories_and_text(tmp_path):
    n = 8
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", pixels=rng.integers(0, 255, (n, 6, 6, 3), dtype=np.uint8),
             age=rng.random(n), income=rng.random((n, 2)), tag=np.arange(n) % 3,
             caption=np.array([f"caption {i}" for i in range(n)]), y=np.arange(n) % 2)
    cfg = data_config(source="npz", path=str(tmp_path / "d.npz"), test_split=0,
                     inputs={"image": "pixels", "numeric": ["age", "income"], "category": ["tag"], "text": "caption"})

    x = build(cfg, seed=0).train.x

    assert x["image"].shape == (n, 6, 6, 3) and x["image"].dtype == np.uint8
    assert x["numeric"].shape == (n, 3) and x["numeric"].dtype == np.float32
    assert x["category"].shape == (n, 1) and x["category"].dtype == np.int32
    assert x["text"].dtype == object and sorted(x["text"]) == [f"caption {i}" for i in range(n)]


@pytest.mark.parametrize("fields, message", [
    ({"inputs": {"numeric": ["area"]}, "features": ["area"]}, "inputs replaces features and categorical"),
    ({"inputs": {"image": "area"}}, "inputs.image reads an npz array of images"),
    ({"inputs": {"text": ["a", "b"]}}, "inputs.text names one column"),
    ({"inputs": {"numeric": []}}, "inputs.numeric is an empty list"),
    ({"inputs": {"pictures": "x"}}, "Input should be 'numeric', 'category', 'text' or 'image'"),
])
def test_inputs_are_checked_when_the_config_is_validated(fields, message):
    with pytest.raises(ValidationError, match=message):
        data_config(source="csv", path="l.csv", **fields)


def test_the_label_cannot_also_be_an_input(tmp_path):
    path = _write(tmp_path / "l.csv", LISTINGS)

    with pytest.raises(DataError, match=r"column 'band' is both the label \(data.label\) and part of "
                                        r"data.inputs.numeric"):
        build(data_config(source="csv", path=str(path), inputs={"numeric": ["area", "band"]}), seed=0)


# --------------------------------------------------------------------------- synthetic sources


@pytest.mark.parametrize("source", ["synthetic_sentiment", "synthetic_ratings", "synthetic_multimodal"])
def test_synthetic_sources_repeat_with_their_seed_and_change_with_another(source):
    def load(seed):
        return build(data_config(source=source, options={"seed": seed}), seed=0)

    first, again, other = load(3), load(3), load(4)

    def flat(x):
        return [np.asarray(v).tolist() for v in (x.values() if isinstance(x, dict) else [x])]

    assert flat(first.train.x) == flat(again.train.x) and first.train.y.tolist() == again.train.y.tolist()
    assert flat(first.train.x) != flat(other.train.x)


def test_synthetic_sentiment_labels_follow_the_keywords():
    data = build(data_config(source="synthetic_sentiment", options={"n": 300}, test_split=0), seed=0)

    def rule(text):
        words = set(text.split())
        assert bool(words & set(POSITIVE)) != bool(words & set(NEGATIVE))  # one polarity per sentence
        return int(bool(words & set(POSITIVE)))

    assert [rule(t) for t in data.train.x] == data.train.y.tolist()
    assert data.info.class_names == ["negative", "positive"] and 0.35 < data.train.y.mean() < 0.65


def test_synthetic_sentiment_label_noise_flips_about_that_fraction():
    data = build(data_config(source="synthetic_sentiment", options={"n": 2000, "label_noise": 0.2}, test_split=0),
                 seed=0)

    rule = np.array([int(bool(set(t.split()) & set(POSITIVE))) for t in data.train.x])
    assert 0.17 < np.mean(rule != data.train.y) < 0.23


def test_synthetic_ratings_are_low_rank_enough_to_predict_held_out_ratings():
    options = {"num_users": 120, "num_items": 60, "rank": 3, "per_user": 20, "noise": 0.1}
    data = build(data_config(source="synthetic_ratings", options=options, split="leave_last_per_user"), seed=0)

    assert len(data.test) == 120 and data.info.vocab_sizes == {"user": 121, "item": 61}
    # A few rounds of alternating least squares on the training rows recover the held-out ratings.
    users, items, y = data.train.x["user"], data.train.x["item"], data.train.y - data.train.y.mean()
    rng = np.random.default_rng(0)
    p, q = rng.normal(0, 0.1, (121, 3)), rng.normal(0, 0.1, (61, 3))
    for _ in range(15):
        for factors, own, other in ((p, users, items), (q, items, users)):
            for k in np.unique(own):
                rows = own == k
                a = (p if factors is q else q)[other[rows]]
                factors[k] = np.linalg.solve(a.T @ a + 0.1 * np.eye(3), a.T @ y[rows])
    predicted = np.sum(p[data.test.x["user"]] * q[data.test.x["item"]], axis=1) + data.train.y.mean()
    rmse = np.sqrt(np.mean((predicted - data.test.y) ** 2))
    baseline = np.sqrt(np.mean((data.train.y.mean() - data.test.y) ** 2))
    assert rmse < 0.4 * baseline


def test_synthetic_multimodal_label_needs_every_input():
    data = build(data_config(source="synthetic_multimodal", options={"n": 800}, test_split=0), seed=0)
    x, y = data.train.x, data.train.y

    square = (x["image"].max(axis=(1, 2, 3)) > 150).astype(int)
    red = np.array([COLOR_ON in t.split() for t in x["text"]], dtype=int)
    positive = (x["numeric"][:, 0] + x["numeric"][:, 1] > 0).astype(int)
    assert (square + red + positive == y).all()
    assert data.info.input_shape == {"image": (16, 16, 3), "text": (), "numeric": (4,)}
    for signal in (square, red, positive):
        # The best guess from one signal alone: the most common label for each of its values.
        best = sum(np.bincount(y[signal == v]).max() for v in (0, 1))
        assert best / len(y) < 0.6


@pytest.mark.parametrize("options, message", [
    ({"nn": 10}, r"synthetic_sentiment.options.nn\n  Extra inputs are not permitted"),
    ({"n": 5}, r"synthetic_sentiment.options.n\n  Input should be greater than or equal to 20"),
    ({"min_words": 9, "max_words": 3}, r"min_words \(9\) is above max_words \(3\)"),
])
def test_synthetic_options_are_validated_with_the_config(options, message):
    with pytest.raises(ValidationError, match=message):
        data_config(source="synthetic_sentiment", options=options)


def test_options_are_filled_in_and_refused_by_sources_without_any():
    assert data_config(source="synthetic_ratings").options.num_users == 200
    assert "options" not in data_config(source="iris").model_dump()
    with pytest.raises(ValidationError, match=r"not read by source 'iris' \(only by synthetic_multimodal, "
                                              r"synthetic_ratings or synthetic_sentiment\)"):
        data_config(source="iris", options={"n": 3})


# --------------------------------------------------------------------------- config keys and DataInfo


@pytest.mark.parametrize("fields, message", [
    ({"source": "image_folder", "image_size": [0, 8]}, r"image_size.0\n.*greater than or equal to 1"),
    ({"source": "csv", "path": "x.csv", "image_size": [8, 8]}, r"not read by source 'csv' \(only by image_folder\)"),
    ({"source": "csv", "path": "x.csv", "color_mode": "rgb"}, r"not read by source 'csv' \(only by image_folder\)"),
    ({"source": "image_folder", "color_mode": "cmyk"}, r"'rgb', 'grayscale' or 'rgba'"),
    ({"source": "csv", "path": "x.csv", "text": "body"}, r"csv.text\n.*only by text_csv or text_jsonl"),
    ({"source": "iris", "inputs": {"numeric": ["a"]}}, r"iris.inputs\n.*only by csv or npz"),
])
def test_new_data_keys_are_validated(fields, message):
    with pytest.raises(ValidationError, match=message):
        data_config(**fields)


def test_a_data_key_for_another_source_is_a_config_error_naming_file_line_and_key():
    text = "data:\n  source: csv\n  path: x.csv\n  image_size: [8, 8]\nmodel: {type: mlp}\n"

    with pytest.raises(ConfigError, match=r"^cfg.yaml:4:3: data.image_size: not read by source 'csv' "
                                          r"\(only by image_folder\); remove it$"):
        parse_config_text(text, "cfg.yaml")


def test_data_info_with_vocab_sizes_round_trips_and_old_files_still_load():
    info = DataInfo("interactions r.csv", "regression", None, None, None, {"user": (), "item": ()},
                    {"vocabularies": {"user": [["a"]], "item": [["x"]]}}, vocab_sizes={"user": 2, "item": 2})

    assert DataInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    old = {k: v for k, v in info.to_dict().items() if k != "vocab_sizes"}
    assert DataInfo.from_dict(old).vocab_sizes is None


def test_validating_configs_with_the_new_sources_and_steps_imports_no_tensorflow():
    code = textwrap.dedent("""
        import sys
        from fmtrain.config import parse_config_text
        parse_config_text('''
        data: {source: synthetic_multimodal, options: {n: 50}}
        preprocess:
          - text_vectorize: {input: text, output_mode: multi_hot}
          - augment: {input: image, flip: horizontal, zoom: 0.1}
          - resize: {input: image, size: [8, 8]}
          - lookup: {input: text}
        model: {type: mlp}
        ''')
        import fmtrain.data
        print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'PIL'}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
