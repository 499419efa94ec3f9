"""`fmtrain predict` on a run trained from a streamed source (tfrecord, parquet, csv shards): INPUT is a shard, a
glob or a folder of them, read a batch at a time with the run's features and encoders; eval's numbers, in file order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tf

tf = pytest.importorskip("tensorflow")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from test_predict import KINDS, _read_csv, _table, invoke  # noqa: E402

TRAIN_ROWS, TEST_ROWS = 120, 40
TRAIN = "train: {epochs: 1, jit_compile: false}"


def _fit(folder: Path, data: str) -> Path:
    # standardize: fitted on the training rows and saved in the model, so predict must apply the run's statistics
    # (it also keeps the serial feature from saturating the outputs, which would hide a row out of order).
    (folder / "c.yaml").write_text(f"name: s\nseed: 3\ndata: {data}\npreprocess: [{{standardize: {{}}}}]\n"
                                   f"model: {{type: mlp, hidden_units: [8]}}\n{TRAIN}\n")
    result = invoke("fit", folder / "c.yaml", "--run-dir", folder / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return folder / "run"


# --------------------------------------------------------------------------- tfrecord


def _write_shard(path: Path, rows: list[dict]) -> Path:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            features = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=[value])) if isinstance(value, int)
                        else tf.train.Feature(float_list=tf.train.FloatList(value=list(value)))
                        for name, value in row.items()}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return path


def _record(serial: int, rng) -> dict:
    """``x[0]`` is the record's serial number (its position over all shards), so an encoded example names it."""
    label = int(rng.integers(3))
    return {"x": [float(serial), *rng.normal(label, 0.5, 3).round(3).tolist()], "label": label}


@pytest.fixture(scope="module")
def tfrecord_run(tmp_path_factory) -> Path:
    """120 training records in 3 shards, 40 test records in 2 shards of 20; a small MLP trained 1 epoch."""
    tmp = tmp_path_factory.mktemp("tfrecord")
    rng = np.random.default_rng(0)
    records = [_record(i, rng) for i in range(TRAIN_ROWS + TEST_ROWS)]
    (tmp / "shards").mkdir()
    for i in range(3):
        _write_shard(tmp / "shards" / f"train-{i}.tfrecord", records[40 * i:40 * (i + 1)])
    for i in range(2):
        start = TRAIN_ROWS + 20 * i
        _write_shard(tmp / "shards" / f"test-{i}.tfrecord", records[start:start + 20])
        (tmp / "unlabelled").mkdir(exist_ok=True)
        _write_shard(tmp / "unlabelled" / f"part-{i}.tfrecord", [{"x": r["x"]} for r in records[start:start + 20]])
    (tmp / "unlabelled" / "data.yaml").write_text("not a shard\n")  # a folder's other files are not read
    shards = tmp / "shards"
    return _fit(tmp, f"{{source: tfrecord, files: {{train: '{shards}/train-*.tfrecord', "
                     f"test: '{shards}/test-*.tfrecord'}}, "
                     "features: {x: {dtype: float32, shape: [4]}, label: int64}, label: label, batch_size: 16}")


def _eval_outputs(run: Path, serials: range):
    """What `fmtrain eval` reads from the run's streamed test split (its ``serials``) and what the model gives
    for it, ordered by the serial number in the first feature: (labels, model outputs)."""
    from fmtrain import data
    from fmtrain.config import load_config
    from fmtrain.evaluate import load_run_model
    from fmtrain.runs import find_run
    from fmtrain.targets import Targets
    from fmtrain.trainers import build_trainer

    found, _ = find_run(run)
    cfg = load_config(found.config)
    info = data.DataInfo.from_dict(found.read_json(found.data_info))
    x, y = data.build(cfg.data, seed=cfg.seed, encoders=info.encoders).test.arrays(None)
    scores = build_trainer(cfg, load_run_model(found), Targets.from_config(cfg, info)).predict(x)
    order = np.argsort(x[:, 0])
    np.testing.assert_array_equal(x[order, 0], np.array(serials))
    return y[order], scores[order]


def _never_whole(monkeypatch) -> None:
    """Fail if a stream is read whole into memory (predict must go batch by batch)."""
    from fmtrain.data.tfrecord import ShardedStream

    monkeypatch.setattr(ShardedStream, "arrays", lambda *a: pytest.fail("predict read a stream whole"))


def _check_against_eval(run: Path, probabilities: np.ndarray, class_ids: list[int]):
    """Row i of the predictions is test record i in file order, with eval's outputs and eval's confusion matrix."""
    labels, scores = _eval_outputs(run, range(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS))
    assert probabilities.shape == scores.shape == (TEST_ROWS, 3)
    assert np.ptp(scores, axis=0).max() > 0.05  # rows differ, so a row out of order would show
    np.testing.assert_allclose(probabilities, scores, atol=1e-6)
    assert class_ids == scores.argmax(axis=1).tolist()
    assert invoke("eval", run, "--quiet").exit_code == 0
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (labels, np.array(class_ids)), 1)
    assert confusion.tolist() == json.loads((run / "eval-test.json").read_text())["classification"]["confusion_matrix"]


def test_tfrecord_shards_are_predicted_in_file_order_with_evals_numbers(tfrecord_run, tmp_path, monkeypatch):
    import fmtrain.predict_output as output

    written = []
    write = output._Writer.write
    monkeypatch.setattr(output._Writer, "write", lambda self, batch: (written.append(len(batch.rows)),
                                                                       write(self, batch)))
    _never_whole(monkeypatch)
    out = tmp_path / "p.npz"
    result = invoke("predict", tfrecord_run, tfrecord_run.parent / "shards" / "test-*.tfrecord", "-o", out,
                    "--batch-size", 16)
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert written == [16, 16, 8]  # batches cross the boundary between the two shards of 20
    assert f"{TEST_ROWS} rows predicted in 3 batches" in result.output
    with np.load(out) as npz:
        assert npz["row"].tolist() == list(range(TEST_ROWS))
        assert npz["class_names"].tolist() == ["0", "1", "2"]
        _check_against_eval(tfrecord_run, npz["probabilities"], npz["class_id"].tolist())
    assert not list(tmp_path.glob("*.partial*"))


def test_tfrecord_shards_without_the_label_a_folder_and_one_file_predict_the_same(tfrecord_run, tmp_path):
    shards = tfrecord_run.parent / "shards"
    with_label = tmp_path / "labelled.csv"
    assert invoke("predict", tfrecord_run, shards / "test-*.tfrecord", "-o", with_label).exit_code == 0
    folder = tmp_path / "folder.jsonl"
    result = invoke("predict", tfrecord_run, tfrecord_run.parent / "unlabelled", "-o", folder, "--batch-size", 7)
    assert result.exit_code == 0, result.output
    _, expected = _read_csv(with_label)
    lines = [json.loads(line) for line in folder.read_text().splitlines()]
    assert [r["row"] for r in lines] == list(range(TEST_ROWS))
    assert [r["class_id"] for r in lines] == [int(r["class_id"]) for r in expected]
    np.testing.assert_allclose([[r["probabilities"][k] for k in "012"] for r in lines],
                               [[float(r[f"p_{k}"]) for k in "012"] for r in expected], atol=1e-6)
    one = tmp_path / "one.csv"
    assert invoke("predict", tfrecord_run, shards / "test-1.tfrecord", "-o", one).exit_code == 0
    assert [r["class_id"] for r in _read_csv(one)[1]] == [r["class_id"] for r in expected[20:]]
    # A URL tf.io.gfile reads (TensorFlow's in-memory file system stands in for gs:// or s3://): a glob, a folder.
    for i in range(2):
        tf.io.gfile.copy(str(shards / f"test-{i}.tfrecord"), f"ram://predict-stream/test-{i}.tfrecord", overwrite=True)
    for where in ("ram://predict-stream/test-*.tfrecord", "ram://predict-stream/"):
        remote = tmp_path / "remote.csv"
        result = invoke("predict", tfrecord_run, where, "-o", remote)
        assert result.exit_code == 0, result.output
        assert _read_csv(remote)[1] == expected


def test_a_shard_without_a_trained_feature_and_an_empty_glob_exit_2_naming_them(tfrecord_run, tmp_path):
    shards = tfrecord_run.parent / "shards"
    bad = _write_shard(tmp_path / "b-1.tfrecord", [{"y": [1.0, 2.0, 3.0, 4.0]}])
    _write_shard(tmp_path / "b-0.tfrecord", [{"x": [1.0, 2.0, 3.0, 4.0]}])
    out = tmp_path / "p.csv"
    out.write_text("earlier predictions\n")
    result = invoke("predict", tfrecord_run, tmp_path / "b-*.tfrecord", "-o", out)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {bad}: record 1 has no feature 'x'") and "Traceback" not in result.output
    assert out.read_text() == "earlier predictions\n" and not list(tmp_path.glob("*.partial*"))
    short = _write_shard(tmp_path / "short.tfrecord", [{"x": [1.0, 2.0, 3.0, 4.0]}, {"x": [1.0]}])
    result = invoke("predict", tfrecord_run, short, "-o", out)  # a bad record past the first: found while predicting
    assert result.exit_code == 2 and f"{short}: record 2 holds 1 value(s) of feature 'x'" in result.output
    assert out.read_text() == "earlier predictions\n" and not list(tmp_path.glob("*.partial*"))
    result = invoke("predict", tfrecord_run, shards / "nothing-*.tfrecord")
    assert result.exit_code == 2 and f"INPUT: '{shards / 'nothing-*.tfrecord'}' matches no file" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("predict", tfrecord_run, tmp_path / "empty")
    assert result.exit_code == 2 and "no .tfrecord or .tfrecords or .tfrec files in the folder" in result.output


# --------------------------------------------------------------------------- tables: parquet and csv shards


TABLE_TEST = range(96, 160)


def _table_shards(tmp: Path) -> tuple[Path, list[Path]]:
    """test_predict's pets table (160 rows, ``serial`` = row) cut into 5 csv shards of 32 rows: 3 train, 2 test."""
    table = _table(tmp / "all.csv", n=TRAIN_ROWS + TEST_ROWS)
    lines = table.read_text().splitlines()
    (tmp / "shards").mkdir()
    paths = []
    for i in range(5):
        path = tmp / "shards" / f"pets-{i}.csv"
        path.write_text("\n".join([lines[0], *lines[1 + 32 * i:1 + 32 * (i + 1)]]) + "\n")
        paths.append(path)
    return tmp / "shards", paths


@pytest.fixture(scope="module", params=["parquet", "csv"])
def table_run(request, tmp_path_factory) -> Path:
    """A run on the pets table streamed from Parquet files or csv shards (3 train, 2 test: rows 96..159)."""
    tmp = tmp_path_factory.mktemp(request.param)
    folder, paths = _table_shards(tmp)
    if request.param == "csv":
        return _fit(tmp, f"{{source: csv, stream: true, path: '{folder}/pets-*.csv', label: kind, test_split: 0.4, "
                         "validation_split: 0, batch_size: 16}")
    import pyarrow.csv as pcsv

    for path in paths:
        pq.write_table(pcsv.read_csv(path), path.with_suffix(".parquet"), row_group_size=10)
    return _fit(tmp, f"{{source: parquet, files: {{train: ['{paths[0].with_suffix('.parquet')}', "
                     f"'{paths[1].with_suffix('.parquet')}', '{paths[2].with_suffix('.parquet')}'], "
                     f"test: '{folder}/pets-[34].parquet'}}, label: kind, batch_size: 16}}")


def test_table_files_are_predicted_in_file_order_with_evals_numbers(table_run, tmp_path, monkeypatch):
    suffix = ".parquet" if (table_run.parent / "shards" / "pets-0.parquet").exists() else ".csv"
    out = tmp_path / "p.csv"
    _never_whole(monkeypatch)
    result = invoke("predict", table_run, table_run.parent / "shards" / f"pets-[34]{suffix}", "-o", out,
                    "--batch-size", 24)
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert "64 rows predicted in 3 batches" in result.output  # 24 + 24 + 16 across the two files of 32
    header, rows = _read_csv(out)
    assert header == ["row", "class", "class_id", "probability", "p_cat", "p_dog", "p_fox"]
    assert [int(r["row"]) for r in rows] == list(range(64))
    labels, scores = _eval_outputs(table_run, TABLE_TEST)
    assert np.ptp(scores, axis=0).max() > 0.05  # rows differ, so a row out of order would show
    np.testing.assert_allclose([[float(r[f"p_{k}"]) for k in KINDS] for r in rows], scores, atol=1e-6)
    predicted = [int(r["class_id"]) for r in rows]
    assert predicted == scores.argmax(axis=1).tolist() and [r["class"] for r in rows] == [KINDS[k] for k in predicted]
    assert invoke("eval", table_run, "--quiet").exit_code == 0
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (labels, np.array(predicted)), 1)
    written = json.loads((table_run / "eval-test.json").read_text())["classification"]["confusion_matrix"]
    assert confusion.tolist() == written


def _unlabelled(sources: list[Path], target: Path, parquet: bool, color: str | None = None) -> list[int]:
    """The rows of ``sources`` (only those of ``color``, if given) without the label, columns in another order
    and one the model never saw, written to ``target`` (as Parquet, if ``parquet``); the rows' positions."""
    rows = []
    for source in sources:
        with source.open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    kept = [i for i, r in enumerate(rows) if color is None or r["color"] == color]
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["note", "color", "size", "serial"])
        writer.writerows([["x", rows[i]["color"], rows[i]["size"], rows[i]["serial"]] for i in kept])
    if parquet:
        import pyarrow.csv as pcsv

        pq.write_table(pcsv.read_csv(target), target.with_suffix(".parquet"))
        target.unlink()
    return kept


def test_table_files_without_the_label_predict_the_same_and_a_missing_column_exits_2(table_run, tmp_path):
    shards = table_run.parent / "shards"
    parquet = (shards / "pets-0.parquet").exists()
    labelled = tmp_path / "labelled.csv"
    assert invoke("predict", table_run, shards / f"pets-[34]{'.parquet' if parquet else '.csv'}", "-o",
                  labelled).exit_code == 0
    (tmp_path / "new").mkdir()
    for i in (3, 4):
        _unlabelled([shards / f"pets-{i}.csv"], tmp_path / "new" / f"new-{i}.csv", parquet)
    out = tmp_path / "new.csv"
    result = invoke("predict", table_run, tmp_path / "new", "-o", out, "--batch-size", 5)
    assert result.exit_code == 0, result.output
    _, expected = _read_csv(labelled)
    _, rows = _read_csv(out)
    assert [(r["row"], r["class"]) for r in rows] == [(r["row"], r["class"]) for r in expected]
    np.testing.assert_allclose([[float(r[f"p_{k}"]) for k in KINDS] for r in rows],
                               [[float(r[f"p_{k}"]) for k in KINDS] for r in expected], atol=1e-6)
    # One colour only: encoded with the run's categories (all three), not ones fitted on this file.
    (tmp_path / "red").mkdir()
    kept = _unlabelled([shards / "pets-3.csv", shards / "pets-4.csv"], tmp_path / "red" / "red.csv", parquet, "red")
    assert 0 < len(kept) < 64
    result = invoke("predict", table_run, tmp_path / "red", "-o", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose([[float(r[f"p_{k}"]) for k in KINDS] for r in _read_csv(out)[1]],
                               [[float(expected[i][f"p_{k}"]) for k in KINDS] for i in kept], atol=1e-6)

    missing = tmp_path / "missing" / f"m{'.parquet' if parquet else '.csv'}"
    missing.parent.mkdir()
    table = pa.table({"serial": [1.0], "size": [0.5], "kind": ["cat"]})
    if parquet:
        pq.write_table(table, missing)
    else:
        missing.write_text("serial,size,kind\n1,0.5,cat\n")
    result = invoke("predict", table_run, missing, "-o", out)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {missing}: no column 'color'") and "Traceback" not in result.output
    result = invoke("predict", table_run, shards / "none-*.parquet")
    assert result.exit_code == 2 and "matches no file" in result.output


# --------------------------------------------------------------------------- streamed folders


def test_a_streamed_image_folder_run_predicts_loose_images_as_an_in_memory_run_does(tmp_path):
    import keras
    from PIL import Image
    from test_predict import _images

    _images(tmp_path / "train", (8, 8))
    (tmp_path / "c.yaml").write_text(
        "name: shapes\ndata: {source: image_folder, path: train, stream: true, test_split: 0.25, batch_size: 4}\n"
        "preprocess: [{rescale: {scale: 0.0039}}]\nmodel: {type: mlp, hidden_units: [4]}\n"
        "train: {epochs: 1, jit_compile: false}\n")
    result = invoke("fit", tmp_path / "c.yaml", "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    names = ["b.png", "a.png", "d.png", "c.png"]
    _images(tmp_path / "new", (8, 8), names=names, per_class=2)
    result = invoke("predict", tmp_path / "run", tmp_path / "new", "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == sorted(names)
    pixels = np.stack([np.asarray(Image.open(tmp_path / "new" / name).convert("RGB")) for name in sorted(names)])
    expected = np.asarray(keras.saving.load_model(tmp_path / "run" / "model.keras")(pixels.astype(np.float32),
                                                                                       training=False))
    np.testing.assert_allclose([[r["probabilities"][k] for k in ("circle", "square")] for r in records], expected,
                               atol=1e-6)
