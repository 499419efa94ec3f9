"""The data layer: sources, splits and encoders, on bundled sets and tiny generated files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fmtrain.config.schema import data_config
from fmtrain.data import DataInfo, Split, Splits, build, sources
from fmtrain.data.splits import plan_splits
from fmtrain.errors import DataError


def _mnist_npz(path, n_train=50, n_test=20, drop=None, label_shape=()):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8).reshape(n_train, *label_shape),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8).reshape(n_test, *label_shape),
    }
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return arrays


def _write(path, text):
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- bundled sets


def test_digits_are_8x8_images_with_ten_classes_and_a_stratified_test_split():
    data = build(data_config(source="digits"), seed=0)

    assert data.train.x.shape[1:] == (8, 8) and data.train.x.dtype == np.float32
    assert data.train.x.max() == 16.0
    assert data.info.input_shape == (8, 8)
    assert data.info.num_classes == 10 and data.info.class_names == [str(i) for i in range(10)]
    assert len(data.train) + len(data.test) == 1797 and len(data.test) == 360
    assert data.train.y.dtype == np.int32
    assert data.val is None
    # 1797 rows, about 180 per digit: a stratified 20% holds 35-37 of each.
    counts = np.bincount(data.test.y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_iris_test_split_has_every_species_although_the_file_is_sorted():
    data = build(data_config(source="iris", test_split=0.1, validation_split=0.2), seed=3)

    assert sorted(set(data.test.y.tolist())) == [0, 1, 2]
    # Training rows are shuffled, so even a "last rows" validation split sees every species.
    assert sorted(set(data.val.y.tolist())) == [0, 1, 2]
    assert data.info.class_names == ["setosa", "versicolor", "virginica"]
    assert data.info.feature_names[0] == "sepal length (cm)"


def test_diabetes_is_regression_with_float_targets():
    data = build(data_config(source="diabetes", test_split=0), seed=0)

    assert data.info.task == "regression" and data.info.num_classes is None
    assert data.train.y.dtype == np.float32 and data.test is None
    assert len(data.train) == 442


def test_random_splits_repeat_with_the_seed_and_change_with_another():
    cfg = data_config(source="wine", validation_split=0.25, split="random", stratify=True)
    first, again, other = build(cfg, seed=7), build(cfg, seed=7), build(cfg, seed=8)

    np.testing.assert_array_equal(first.val.x, again.val.x)
    np.testing.assert_array_equal(first.test.x, again.test.x)
    np.testing.assert_array_equal(first.train.x, again.train.x)
    assert not np.array_equal(first.val.x, other.val.x)
    assert not np.array_equal(first.test.x, other.test.x)


def test_validation_split_does_not_move_the_test_rows():
    without = build(data_config(source="iris"), seed=1)
    with_val = build(data_config(source="iris", validation_split=0.3, split="random"), seed=1)

    np.testing.assert_array_equal(without.test.x, with_val.test.x)


def test_a_bundled_set_refuses_keys_it_would_ignore_when_the_config_is_validated():
    with pytest.raises(ValidationError, match=r"iris.path\n.*not read by source 'iris' \(only by cifar10, csv, "):
        data_config(source="iris", path="iris.csv")
    with pytest.raises(ValidationError, match=r"source 'digits' is a classification data set; remove data.task"):
        data_config(source="digits", task="regression")
    assert data_config(source="diabetes", task="regression").task == "regression"


def test_a_small_fraction_still_holds_out_one_row_as_keras_rounds():
    data = build(data_config(source="iris", test_split=0.001, validation_split=0.001), seed=0)

    # Keras keeps int(n * (1 - fraction)) rows for training: 149 of 150, then 148 of 149.
    assert (len(data.train), len(data.val), len(data.test)) == (148, 1, 1)


@pytest.mark.parametrize(
    "fractions, message",
    [({"validation_split": 1e-20}, r"data.validation_split 1e-20 of 150 training rows leaves an empty "
                                   r"validation split; use at least 1/150"),
     ({"validation_split": 0.999}, r"data.validation_split 0.999 of 150 training rows leaves no training rows"),
     ({"test_split": 0.9, "validation_split": 0.05}, r"data.test_split 0.9 of 3 rows leaves no training rows")],
)
def test_a_split_that_would_be_empty_names_the_key(tmp_path, fractions, message):
    path = _write(tmp_path / "tiny.csv", "x,y\n1,0\n2,1\n3,0\n")
    source = {"source": "csv", "path": str(path)} if "test_split" in fractions else {"source": "iris", "test_split": 0}
    with pytest.raises(DataError, match=message):
        build(data_config(**source, **fractions), seed=0)


# --------------------------------------------------------------------------- keras.datasets


def test_keras_layout_npz_loads_through_path(tmp_path):
    arrays = _mnist_npz(tmp_path / "mnist.npz")
    data = build(data_config(source="mnist", path=str(tmp_path / "mnist.npz")), seed=0)

    assert data.train.x.shape == (50, 28, 28) and data.train.x.dtype == np.uint8
    assert data.test.x.shape == (20, 28, 28)
    # Its own test split is kept as it is, in file order.
    np.testing.assert_array_equal(data.test.x, arrays["x_test"])
    np.testing.assert_array_equal(data.train.y, arrays["y_train"])
    assert data.train.y.dtype == np.int32
    assert data.info.source == f"mnist {tmp_path / 'mnist.npz'}"
    assert data.info.class_names == [str(i) for i in range(10)] and data.info.input_shape == (28, 28)


@pytest.mark.parametrize("fraction", [0.2, 0.33])
def test_last_validation_split_is_the_last_rows_like_keras_fit(tmp_path, fraction):
    arrays = _mnist_npz(tmp_path / "mnist.npz")
    data = build(data_config(source="mnist", path=str(tmp_path / "mnist.npz"), validation_split=fraction), seed=0)

    split_at = int(50 * (1 - fraction))  # keras.Model.fit(validation_split=...)
    np.testing.assert_array_equal(data.val.x, arrays["x_train"][split_at:])
    np.testing.assert_array_equal(data.train.x, arrays["x_train"][:split_at])
    np.testing.assert_array_equal(data.val.y, arrays["y_train"][split_at:])


def test_cifar10_labels_of_shape_n_by_1_are_flattened(tmp_path):
    _mnist_npz(tmp_path / "c.npz", label_shape=(1,))
    data = build(data_config(source="cifar10", path=str(tmp_path / "c.npz")), seed=0)

    assert data.train.y.shape == (50,) and data.test.y.shape == (20,)
    assert data.info.class_names[0] == "airplane"


def test_keras_npz_without_a_key_lists_what_it_found(tmp_path):
    _mnist_npz(tmp_path / "mnist.npz", drop="y_test")
    with pytest.raises(DataError) as err:
        build(data_config(source="mnist", path=str(tmp_path / "mnist.npz")), seed=0)

    message = str(err.value)
    assert str(tmp_path / "mnist.npz") in message and "no array 'y_test'" in message
    assert "arrays found: 'x_train', 'y_train', 'x_test'" in message


def test_a_missing_file_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=f"file not found: {tmp_path / 'nope.npz'}"):
        build(data_config(source="fashion_mnist", path="nope.npz"), seed=0)


def test_offline_download_says_to_set_data_path(monkeypatch):
    def offline(name):
        raise OSError("Name or service not known")

    monkeypatch.setattr(sources, "_download_keras_dataset", offline)
    expected = r"could not download fashion_mnist.*x_train, y_train, x_test, y_test.*data\.path"
    with pytest.raises(DataError, match=expected):
        build(data_config(source="fashion_mnist"), seed=0)


# --------------------------------------------------------------------------- csv

PETS = """size,color,legs,animal
1.5,red,4,cat
2.5,blue,4,dog
3.5,red,2,bird
4.5,green,4,dog
5.5,blue,2,bird
6.5,red,4,cat
"""


def test_csv_one_hot_encodes_text_columns_and_maps_string_labels(tmp_path):
    path = _write(tmp_path / "pets.csv", PETS)
    data = build(data_config(source="csv", path=str(path), test_split=0), seed=0)
    info = data.info

    assert info.source == f"csv {path}"
    assert info.task == "classification" and info.class_names == ["bird", "cat", "dog"]
    assert info.feature_names == ["size", "color=blue", "color=green", "color=red", "legs"]
    assert info.input_shape == (5,) and data.train.x.dtype == np.float32
    assert info.encoders.categories == {"color": ["blue", "green", "red"]}
    expected = {1.5: ("red", "cat"), 2.5: ("blue", "dog"), 3.5: ("red", "bird"),
                4.5: ("green", "dog"), 5.5: ("blue", "bird"), 6.5: ("red", "cat")}
    for row, label in zip(data.train.x, data.train.y, strict=True):
        color, animal = expected[float(row[0])]
        assert row[1:4].tolist() == [float(color == c) for c in ("blue", "green", "red")]
        assert info.class_names[label] == animal


def test_csv_reuses_encoders_and_an_unseen_category_is_all_zero(tmp_path):
    first = build(data_config(source="csv", path=str(_write(tmp_path / "a.csv", PETS)), test_split=0), seed=0)
    later = _write(tmp_path / "b.csv", "animal,legs,size,color\ndog,4,9.5,purple\ncat,4,8.5,blue\n")
    data = build(data_config(source="csv", path=str(later), label="animal", test_split=0), seed=0,
                 encoders=json.loads(json.dumps(first.info.encoders.to_dict())))

    assert data.info.feature_names == first.info.feature_names
    assert data.info.class_names == first.info.class_names
    rows = {float(r[0]): (r, int(y)) for r, y in zip(data.train.x, data.train.y, strict=True)}
    purple, dog = rows[9.5]
    assert purple[1:4].tolist() == [0.0, 0.0, 0.0] and first.info.class_names[dog] == "dog"
    assert rows[8.5][0][1:4].tolist() == [1.0, 0.0, 0.0]


def test_csv_encoders_are_fitted_on_training_rows_only(tmp_path):
    rows = "".join(f"{i},{'rare' if i == 0 else 'common'},{i % 2}\n" for i in range(20))
    path = _write(tmp_path / "t.csv", "n,kind,y\n" + rows)
    seen = []
    for seed in range(6):
        data = build(data_config(source="csv", path=str(path), test_split=0.5), seed=seed)
        in_train = 0.0 in data.train.x[:, 0]
        assert ("kind=rare" in data.info.feature_names) == in_train
        seen.append(in_train)
    assert not all(seen)  # some seed held the only 'rare' row out of training


def test_csv_non_numeric_value_in_a_numeric_column_names_the_line(tmp_path):
    path = _write(tmp_path / "ages.csv", "age,y\n31,0\n42,1\nforty,0\n27,1\n")
    with pytest.raises(DataError, match=rf"{path}:4: column 'age' should be a number but is 'forty'.*data.categorical"):
        build(data_config(source="csv", path=str(path)), seed=0)


def test_csv_empty_cell_names_the_line(tmp_path):
    path = _write(tmp_path / "gaps.csv", "a,b,y\n1,2,0\n3,,1\n")
    with pytest.raises(DataError, match=rf"{path}:3: column 'b' is empty"):
        build(data_config(source="csv", path=str(path)), seed=0)


def test_csv_unknown_label_column_suggests_the_closest(tmp_path):
    path = _write(tmp_path / "pets.csv", PETS)
    with pytest.raises(DataError, match=r"data.label names column 'animals'.*did you mean 'animal'"):
        build(data_config(source="csv", path=str(path), label="animals"), seed=0)


def test_csv_requires_a_path():
    with pytest.raises(ValidationError, match=r"csv.path\n  Field required"):
        data_config(source="csv")


@pytest.mark.parametrize(
    "labels, task, dtype",
    [(["0.5", "1.25", "2", "3"], "regression", np.float32),
     (["0", "1", "2", "1"], "classification", np.int32)],
)
def test_csv_task_follows_the_label_column(tmp_path, labels, task, dtype):
    path = _write(tmp_path / "t.csv", "x,target\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))
    data = build(data_config(source="csv", path=str(path), test_split=0), seed=0)

    assert data.info.task == task and data.train.y.dtype == dtype


# --------------------------------------------------------------------------- npz


def test_npz_with_two_feature_arrays_gives_a_dict(tmp_path):
    np.savez(tmp_path / "multi.npz", image=np.zeros((10, 4, 4), np.float64), meta=np.ones((10, 3)),
             y=np.arange(10) % 2)
    data = build(data_config(source="npz", path=str(tmp_path / "multi.npz"), features=["image", "meta"],
                            test_split=0.2), seed=0)

    assert set(data.train.x) == {"image", "meta"}
    assert data.train.x["image"].shape == (8, 4, 4) and data.train.x["meta"].dtype == np.float32
    assert data.info.input_shape == {"image": (4, 4), "meta": (3,)}
    assert len(data.test) == 2 and data.info.num_classes == 2


def test_npz_missing_array_lists_the_arrays_found(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), labels=np.zeros(4))
    with pytest.raises(DataError, match=r"no array 'y' \(data.label\).*arrays found: 'x', 'labels'"):
        build(data_config(source="npz", path=str(tmp_path / "d.npz")), seed=0)


# --------------------------------------------------------------------------- the returned objects


def test_subset_keeps_the_first_rows_of_each_split():
    data = build(data_config(source="digits", validation_split=0.1), seed=0)
    small = data.subset(train=16, evaluate=8)

    assert (len(small.train), len(small.val), len(small.test)) == (16, 8, 8)
    np.testing.assert_array_equal(small.train.x, data.train.x[:16])
    np.testing.assert_array_equal(small.test.y, data.test.y[:8])
    assert small.info == data.info


def test_subset_of_dict_features():
    split = Split({"a": np.arange(10), "b": np.arange(20).reshape(10, 2)}, np.arange(10))
    info = DataInfo("t", "regression", None, None, None, {"a": (), "b": (2,)}, {})
    small = Splits(split, None, None, info).subset(3, 3)

    assert small.train.x["b"].shape == (3, 2) and small.val is None


@pytest.mark.parametrize("input_shape", [(8, 8), {"image": (4, 4), "meta": (3,)}])
def test_data_info_round_trips_through_json(input_shape):
    info = DataInfo("csv /data/pets.csv", "classification", 3, ["bird", "cat", "dog"], ["size", "color=red"],
                    input_shape, {"categories": {"color": ["red"]}, "label_classes": ["bird", "cat", "dog"]})

    assert DataInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_importing_the_data_layer_imports_neither_sklearn_nor_tensorflow():
    code = (
        "import sys, fmtrain.data, fmtrain.data.sources as s; assert s.SOURCES.names(); "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'tensorflow', 'keras'}); "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_source_has_a_one_line_summary():
    assert {"digits", "iris", "wine", "breast_cancer", "diabetes", "mnist", "fashion_mnist", "cifar10",
            "csv", "npz"} <= set(sources.SOURCES.names())
    assert all(entry.summary for entry in sources.SOURCES.entries())


# --------------------------------------------------------------------------- split plans


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 300),
    test_split=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
    validation_split=st.sampled_from([0.0, 0.05, 0.2, 0.4]),
    split=st.sampled_from(["last", "random"]),
    stratify=st.booleans(),
    own_test=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_a_split_plan_partitions_the_rows_with_keras_sizes(n, test_split, validation_split, split, stratify,
                                                           own_test, seed):
    cfg = data_config(source="iris", test_split=test_split, validation_split=validation_split,
                     split=split, stratify=stratify)
    labels = np.random.default_rng(seed).integers(0, 3, n)
    try:
        plan = plan_splits(cfg, n, seed=seed, labels=labels, own_test=own_test)
    except DataError as err:
        assert "leaves no training rows" in str(err)
        return
    parts = [np.arange(n)[p] for p in (plan.train, plan.val, plan.test) if p is not None]
    rows = np.concatenate(parts)
    assert sorted(rows.tolist()) == list(range(n))  # every row in exactly one split

    pool = n if own_test or test_split == 0 else int(n * (1 - test_split))
    assert plan.test is None if own_test or test_split == 0 else len(parts[-1]) == n - pool
    if validation_split:
        assert len(np.arange(n)[plan.val]) == pool - int(pool * (1 - validation_split))
