"""`fmtrain predict`: the run's encoders on new rows, eval's numbers, batch by batch, one line on bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from shape_images import shape_images as _images  # noqa: E402

from fmtrain.cli import app  # noqa: E402
from fmtrain.predict import OutputReading  # noqa: E402

KINDS = ("cat", "dog", "fox")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _table(path: Path, n: int = 120, header=("serial", "size", "color", "kind")) -> Path:
    """Rows whose `serial` feature is their 0-based position, so an encoded example names its row."""
    rng = np.random.default_rng(1)
    colors = ("red", "green", "blue")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(n):
            kind = int(rng.integers(3))
            row = {"serial": i, "size": round(float(rng.normal(kind, 0.5)), 3), "color": colors[(kind + i) % 3],
                   "kind": KINDS[kind], "note": f"n{i}"}
            writer.writerow([row[name] for name in header])
    return path


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pets")
    _table(tmp / "pets.csv")
    (tmp / "c.yaml").write_text(
        "name: pets\nseed: 3\ndata: {source: csv, path: pets.csv, label: kind, test_split: 0.25, batch_size: 16}\n"
        "model: {type: mlp, hidden_units: [8]}\ntrain: {epochs: 1, jit_compile: false}\n"
    )
    result = invoke("fit", tmp / "c.yaml", "--run-dir", tmp / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return tmp / "run"


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _eval_predictions(run: Path):
    """What `fmtrain eval` computes on the test split: its examples, labels and model outputs."""
    from fmtrain import data
    from fmtrain.config import load_config
    from fmtrain.evaluate import load_run_model
    from fmtrain.runs import find_run
    from fmtrain.targets import Targets
    from fmtrain.trainers import build_trainer

    found, _ = find_run(run)
    cfg = load_config(found.config)
    info = data.DataInfo.from_dict(found.read_json(found.data_info))
    test = data.build(cfg.data, seed=cfg.seed, encoders=info.encoders).test
    model = load_run_model(found)
    return test, build_trainer(cfg, model, Targets.from_config(cfg, info)).predict(test.x)


def test_predictions_equal_evals_on_the_test_rows(csv_run, tmp_path):
    assert invoke("eval", csv_run, "--quiet").exit_code == 0
    out = tmp_path / "preds.csv"
    result = invoke("predict", csv_run, csv_run.parent / "pets.csv", "--output", out, "--batch-size", 16)
    assert result.exit_code == 0, result.output
    header, rows = _read_csv(out)
    assert header == ["row", "class", "class_id", "probability", "p_cat", "p_dog", "p_fox"]
    assert [int(r["row"]) for r in rows] == list(range(120))

    test, scores = _eval_predictions(csv_run)
    positions = test.x[:, 0].astype(int)  # the serial feature: each test example's row in pets.csv
    probabilities = np.array([[float(rows[i][f"p_{k}"]) for k in KINDS] for i in positions])
    np.testing.assert_allclose(probabilities, scores, atol=1e-6)
    predicted = np.array([int(rows[i]["class_id"]) for i in positions])
    assert (predicted == scores.argmax(axis=1)).all()
    assert [rows[i]["class"] for i in positions] == [KINDS[k] for k in predicted]
    # ... and they are the predictions behind eval's own confusion matrix
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (test.y, predicted), 1)
    written = json.loads((csv_run / "eval-test.json").read_text())["classification"]["confusion_matrix"]
    assert confusion.tolist() == written


def test_every_output_format_holds_the_same_predictions_and_the_label_column_is_not_needed(csv_run, tmp_path):
    full = tmp_path / "full.csv"
    assert invoke("predict", csv_run, csv_run.parent / "pets.csv", "-o", full).exit_code == 0
    # no label, columns in another order, one the model never saw: read by name, the extra one ignored
    unlabelled = _table(tmp_path / "new.csv", header=("note", "color", "size", "serial"))
    outputs = {suffix: tmp_path / f"p{suffix}" for suffix in (".csv", ".jsonl", ".npz")}
    for path in outputs.values():
        result = invoke("predict", csv_run, unlabelled, "-o", path, "--batch-size", 7)
        assert result.exit_code == 0, result.output
    _, expected = _read_csv(full)
    _, from_csv = _read_csv(outputs[".csv"])
    assert [(r["row"], r["class"], r["class_id"]) for r in from_csv] == [
        (r["row"], r["class"], r["class_id"]) for r in expected]
    np.testing.assert_allclose([[float(r[f"p_{k}"]) for k in KINDS] for r in from_csv],
                               [[float(r[f"p_{k}"]) for k in KINDS] for r in expected], atol=1e-6)  # other batch size
    lines = [json.loads(line) for line in outputs[".jsonl"].read_text().splitlines()]
    assert [(r["row"], r["class"], r["class_id"]) for r in lines] == [
        (int(r["row"]), r["class"], int(r["class_id"])) for r in expected]
    np.testing.assert_allclose([[r["probabilities"][k] for k in KINDS] for r in lines],
                               [[float(r[f"p_{k}"]) for k in KINDS] for r in from_csv], atol=1e-7)
    with np.load(outputs[".npz"]) as npz:
        assert npz["row"].tolist() == list(range(120))
        assert npz["class_names"].tolist() == list(KINDS)
        assert npz["class_id"].tolist() == [int(r["class_id"]) for r in expected]
        np.testing.assert_allclose(npz["probabilities"], [[float(r[f"p_{k}"]) for k in KINDS] for r in from_csv],
                                   atol=1e-7)
    assert not list(tmp_path.glob("*.partial*"))


def test_rows_are_predicted_and_written_one_batch_at_a_time_by_one_compiled_function(csv_run, tmp_path, monkeypatch):
    import fmtrain.engine.steps as steps
    import fmtrain.predict_output as predict

    written, compiled = [], []
    write, make = predict._CsvWriter.write, steps.make_predict_function
    monkeypatch.setattr(predict._CsvWriter, "write", lambda self, batch: (written.append(len(batch.rows)),
                                                                            write(self, batch)))
    monkeypatch.setattr(steps, "make_predict_function", lambda *a: compiled.append(1) or make(*a))
    result = invoke("predict", csv_run, csv_run.parent / "pets.csv", "-o", tmp_path / "p.csv", "--batch-size", 50)
    assert result.exit_code == 0, result.output
    assert written == [50, 50, 20] and compiled == [1]
    assert "120 rows predicted in 3 batches" in result.output


def test_a_missing_column_exits_2_naming_it_and_leaves_the_old_output_alone(csv_run, tmp_path):
    _table(tmp_path / "no_color.csv", header=("serial", "size", "kind"))
    out = tmp_path / "preds.csv"
    out.write_text("earlier predictions\n")
    result = invoke("predict", csv_run, tmp_path / "no_color.csv", "-o", out)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and "'color'" in result.output and "Traceback" not in result.output
    assert out.read_text() == "earlier predictions\n"
    assert not list(tmp_path.glob("*.partial*"))
    (tmp_path / "empty.csv").write_text("serial,size,color\n")
    result = invoke("predict", csv_run, tmp_path / "empty.csv", "-o", out)
    assert result.exit_code == 2 and "no data rows" in result.output


def test_examples_of_another_shape_exit_2_naming_both_shapes(small_digits_run, tmp_path):
    np.savez(tmp_path / "wide.npz", x=np.zeros((5, 4, 16), np.float32))
    result = invoke("predict", small_digits_run, tmp_path / "wide.npz")
    assert result.exit_code == 2, result.output
    assert "4×16" in result.output and "8×8" in result.output


def test_a_bundled_sets_run_predicts_an_npz_of_examples(small_digits_run, tmp_path):
    import keras
    from sklearn.datasets import load_digits

    x = load_digits().data[:30].reshape(-1, 8, 8).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    result = invoke("predict", small_digits_run, tmp_path / "x.npz", "-o", tmp_path / "p.npz")
    assert result.exit_code == 0, result.output
    expected = np.asarray(keras.saving.load_model(small_digits_run / "model.keras")(x, training=False))
    with np.load(tmp_path / "p.npz") as npz:
        np.testing.assert_allclose(npz["probabilities"], expected, atol=1e-6)
        assert npz["class_names"].tolist() == [str(i) for i in range(10)]


def test_without_output_it_prints_the_first_rows_and_the_class_counts(csv_run):
    result = invoke("predict", csv_run, csv_run.parent / "pets.csv")
    assert result.exit_code == 0, result.output
    assert "first 10 of 120 rows" in result.output
    counts = result.output.split("classes:")[1]
    assert sum(int(part.split(":")[1]) for part in counts.replace("\n", " ").split(",")) == 120


def test_an_output_of_an_unknown_kind_is_refused_before_anything_loads(tmp_path):
    result = invoke("predict", tmp_path / "no-run", tmp_path / "x.csv", "-o", tmp_path / "p.parquet")
    assert result.exit_code == 2
    assert "error: --output" in result.output and ".csv, .jsonl or .npz" in result.output
    result = invoke("predict", tmp_path / "no-run", tmp_path / "x.csv", "--batch-size", 0)
    assert result.exit_code == 2 and "error: --batch-size 0: expected at least 1" in result.output


def test_outputs_become_probabilities_and_classes_as_eval_reads_them():
    rows = np.arange(2)
    sigmoid = OutputReading("classification", ["no", "yes"], from_logits=False).read(rows, np.array([[0.2], [0.7]]))
    np.testing.assert_allclose(sigmoid.probabilities, [[0.8, 0.2], [0.3, 0.7]], atol=1e-7)
    assert sigmoid.class_ids.tolist() == [0, 1]
    logits = OutputReading("classification", ["a", "b", "c"], from_logits=True).read(rows, np.array(
        [[0.0, 0.0, np.log(2.0)], [3.0, 0.0, 0.0]]))
    np.testing.assert_allclose(logits.probabilities[0], [0.25, 0.25, 0.5], atol=1e-6)
    assert logits.class_ids.tolist() == [2, 0]
    values = OutputReading("regression", None, from_logits=False).read(rows, np.array([1.5, -2.0]))
    assert values.values.tolist() == [[1.5], [-2.0]] and values.class_ids is None


def test_a_folder_of_loose_images_is_predicted_by_file_at_the_trained_size(image_run, tmp_path):
    import keras
    from PIL import Image

    names = ["b.png", "a.png", "d.jpg", "c.png"]
    _images(tmp_path / "new", (12, 12), names=names, per_class=2)
    (tmp_path / "new" / "notes.txt").write_text("not an image")
    result = invoke("predict", image_run, tmp_path / "new", "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == sorted(names) and [r["row"] for r in records] == [0, 1, 2, 3]
    pixels = np.stack([np.asarray(Image.open(tmp_path / "new" / name).convert("RGB").resize((8, 8), Image.BILINEAR))
                       for name in sorted(names)]).astype(np.float32)
    expected = np.asarray(keras.saving.load_model(image_run / "model.keras")(pixels, training=False))
    np.testing.assert_allclose([[r["probabilities"][k] for k in ("circle", "square")] for r in records], expected,
                               atol=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".npz"])
def test_regression_values_are_written_per_batch_and_a_failed_write_leaves_nothing(tmp_path, suffix):
    from fmtrain.predict import Predictions, open_writer

    reading = OutputReading("regression", None, from_logits=False)
    out = tmp_path / f"p{suffix}"
    writer = open_writer(out, 5, reading)
    for start, stop in ((0, 2), (2, 4), (4, 5)):
        writer.write(Predictions(np.arange(start, stop), values=np.arange(start, stop, dtype=np.float32)[:, None] / 4))
    assert not out.exists()  # only the .partial file until the last batch is written
    writer.close()
    if suffix == ".csv":
        assert out.read_text().splitlines() == ["row,value", "0,0.0", "1,0.25", "2,0.5", "3,0.75", "4,1.0"]
    elif suffix == ".jsonl":
        assert [json.loads(line) for line in out.read_text().splitlines()][-1] == {"row": 4, "value": 1.0}
    else:
        with np.load(out) as npz:
            assert npz["values"][:, 0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
            assert npz["row"].tolist() == [0, 1, 2, 3, 4]
    out.write_bytes(b"kept")
    failed = open_writer(out, 5, reading)
    failed.write(Predictions(np.arange(2), values=np.zeros((2, 1), np.float32)))
    failed.discard()
    assert out.read_bytes() == b"kept" and sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(2)
    words = {"good": ["great", "fine", "nice"], "bad": ["awful", "poor", "sad"]}
    with (tmp / "reviews.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "mood"])
        for i in range(60):
            mood = ("good", "bad")[i % 2]
            writer.writerow([" ".join(rng.choice(words[mood], 4)), mood])
    (tmp / "c.yaml").write_text(
        "name: moods\ndata: {source: text_csv, path: reviews.csv, test_split: 0.2}\n"
        "preprocess: [{text_vectorize: {max_tokens: 20, sequence_length: 6}}]\n"
        "model: {type: text_cnn, embed_dim: 4, filters: 4, kernel_sizes: [2]}\ntrain: {epochs: 1, jit_compile: false}\n"
    )
    result = invoke("fit", tmp / "c.yaml", "--run-dir", tmp / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return tmp / "run"


def test_text_is_read_from_a_txt_file_a_folder_of_txt_files_or_the_csv_without_labels(text_run, tmp_path):
    import keras

    documents = ["great nice fine", "awful sad", "fine", "poor poor great"]
    (tmp_path / "docs.txt").write_text("\n".join(documents) + "\n")
    (tmp_path / "folder").mkdir()
    for name, doc in zip(("b.txt", "a.txt", "d.txt", "c.txt"), documents, strict=True):
        (tmp_path / "folder" / name).write_text(doc)
    (tmp_path / "new.csv").write_text("text\n" + "\n".join(f'"{d}"' for d in documents) + "\n")
    model = keras.saving.load_model(text_run / "model.keras")
    for source, order in (("docs.txt", [0, 1, 2, 3]), ("folder", [1, 0, 3, 2]), ("new.csv", [0, 1, 2, 3])):
        out = tmp_path / f"{source}.csv"
        result = invoke("predict", text_run, tmp_path / source, "-o", out)
        assert result.exit_code == 0, result.output
        header, rows = _read_csv(out)
        assert ("file" in header) == (source == "folder")
        expected = np.asarray(model(np.array([documents[i] for i in order]), training=False))
        np.testing.assert_allclose([[float(r["p_bad"]), float(r["p_good"])] for r in rows], expected, atol=1e-6)


def test_jsonl_text_is_read_by_its_text_key_without_labels(tmp_path):
    from fmtrain.data.text import TextJsonlSource
    from fmtrain.errors import DataError
    from fmtrain.predict_input import _texts

    path = tmp_path / "new.jsonl"
    path.write_text('{"body": "one", "id": 1}\n\n{"body": "two"}\n')
    data = TextJsonlSource(path=str(path), text="body")
    assert _texts(data, path).x.tolist() == ["one", "two"]
    path.write_text('{"body": "one"}\n{"text": "two"}\n')
    with pytest.raises(DataError, match=r"new.jsonl:2: no string under key 'body' \(data.text\)"):
        _texts(data, path)


def test_named_csv_inputs_are_encoded_with_the_runs_vocabularies_without_the_label(tmp_path):
    from fmtrain import data
    from fmtrain.config import load_config
    from fmtrain.predict_input import read_inputs

    rows = [(i, 20 + i % 7, ("oslo", "rome", "lima")[i % 3], ("x", "y")[i % 2]) for i in range(12)]
    (tmp_path / "train.csv").write_text("serial,age,city,label\n" + "".join(f"{r[0]},{r[1]},{r[2]},{r[3]}\n"
                                                                          for r in rows))
    (tmp_path / "c.yaml").write_text("data: {source: csv, path: train.csv, test_split: 0, "
                                     "inputs: {numeric: [serial, age], category: [city]}}\nmodel: {type: mlp}\n")
    cfg = load_config(tmp_path / "c.yaml")
    trained = data.build(cfg.data, seed=0)
    # new rows: no label, columns reordered, a city never seen in training (id 0)
    (tmp_path / "new.csv").write_text("city,age,serial\nrome,21,1\nparis,30,99\nlima,22,2\n")
    x = read_inputs(cfg, trained.info, tmp_path / "new.csv").x
    order = np.argsort(trained.train.x["numeric"][:, 0])  # the serial column: training rows in file order
    assert x["numeric"].tolist() == [[1, 21], [99, 30], [2, 22]]
    assert x["category"][[0, 2]].tolist() == trained.train.x["category"][order][[1, 2]].tolist()
    assert x["category"][1].tolist() == [0]
