"""`fmtrain export`: each format, loaded by its own runtime, gives the Keras model's outputs; a gap past
the tolerance exits 1; a missing optional package exits 2 with the install command."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.tf

pytest.importorskip("tensorflow")

from fmtrain.cli import app  # noqa: E402


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def examples_and_keras_outputs(small_digits_run):
    """Digits the run never trained on (its last rows are in the test split or not: any will do) and
    what the Keras model says about them, computed here, not by fmtrain."""
    import keras
    from sklearn.datasets import load_digits

    x = load_digits().data[-40:].reshape(-1, 8, 8).astype(np.float32)
    return x, np.asarray(keras.saving.load_model(small_digits_run / "model.keras")(x, training=False))


def _export(run: Path, out: Path, fmt: str, *more):
    result = invoke("export", run, "--format", fmt, "--output", out, *more)
    assert result.exit_code == 0, result.output
    assert "max abs difference from Keras" in result.output and ": ok" in result.output
    return result


def test_saved_model_has_a_named_serving_signature_that_gives_kerass_outputs(small_digits_run,
                                                                            examples_and_keras_outputs, tmp_path):
    import tensorflow as tf

    _export(small_digits_run, tmp_path / "sm", "saved_model")
    signature = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["inputs"]
    x, expected = examples_and_keras_outputs
    got = signature(inputs=tf.constant(x))["output"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_runs_in_the_interpreter_with_kerass_outputs(small_digits_run, examples_and_keras_outputs, tmp_path):
    import tensorflow as tf

    _export(small_digits_run, tmp_path / "m.tflite", "tflite")
    runner = tf.lite.Interpreter(model_path=str(tmp_path / "m.tflite")).get_signature_runner("serving_default")
    x, expected = examples_and_keras_outputs
    np.testing.assert_allclose(runner(inputs=x)["output"], expected, atol=1e-5)


def test_onnx_runs_in_onnxruntime_with_kerass_outputs(small_digits_run, examples_and_keras_outputs, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")

    _export(small_digits_run, tmp_path / "m.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["inputs"]
    x, expected = examples_and_keras_outputs
    np.testing.assert_allclose(session.run(["output"], {"inputs": x})[0], expected, atol=1e-5)


def test_outputs_past_the_tolerance_exit_1_with_the_difference(small_digits_run, tmp_path, monkeypatch):
    import fmtrain.export as export

    run_saved_model = export._RUNNERS["saved_model"]
    monkeypatch.setitem(export._RUNNERS, "saved_model", lambda path, feed: run_saved_model(path, feed) + 0.01)
    result = invoke("export", small_digits_run, "--format", "saved_model", "--output", tmp_path / "sm")
    assert result.exit_code == 1, result.output
    assert "differ from the Keras model's by up to 0.01" in result.output and "--tolerance 0.0001" in result.output
    # the same gap passes a looser tolerance
    _export(small_digits_run, tmp_path / "sm2", "saved_model", "--tolerance", "0.02")


def test_an_existing_export_is_kept_unless_overwrite(small_digits_run, tmp_path):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"earlier")
    result = invoke("export", small_digits_run, "--format", "tflite", "--output", out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_bytes() == b"earlier"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    result = invoke("export", small_digits_run, "--format", "saved_model", "--output", tmp_path / "notes",
                    "--overwrite")
    assert result.exit_code == 2 and "not a SavedModel" in result.output
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_onnx_without_its_packages_exits_2_with_the_install_command(small_digits_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    result = invoke("export", small_digits_run, "--format", "onnx", "--output", tmp_path / "m.onnx")
    assert result.exit_code == 2, result.output
    assert "pip install 'fmtrain[onnx]'" in result.output and "tf2onnx" in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_an_unknown_format_names_the_choices():
    result = invoke("export", "no-run", "--format", "tflit")
    assert result.exit_code == 2
    assert "saved_model, tflite, onnx" in result.output and "did you mean 'tflite'" in result.output



def test_a_model_with_named_inputs_exports_them_by_name(tmp_path):
    import keras
    import tensorflow as tf

    rows = [(20 + i % 9, ("oslo", "rome", "lima")[i % 3], ("x", "y")[i % 2]) for i in range(40)]
    (tmp_path / "d.csv").write_text("age,city,label\n" + "".join(f"{a},{c},{y}\n" for a, c, y in rows))
    (tmp_path / "c.yaml").write_text(
        "name: named\ndata: {source: csv, path: d.csv, inputs: {numeric: [age], category: [city]}}\n"
        "model: {type: mlp, hidden_units: [4]}\ntrain: {epochs: 1, jit_compile: false}\n")
    assert invoke("fit", tmp_path / "c.yaml", "--run-dir", tmp_path / "run", "--quiet").exit_code == 0
    result = _export(tmp_path / "run", tmp_path / "sm", "saved_model")
    assert "inputs numeric, category" in result.output
    signature = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    assert sorted(signature.structured_input_signature[1]) == ["category", "numeric"]
    feed = {"numeric": np.array([[25.0], [61.0]], np.float32), "category": np.array([[1], [3]], np.int32)}
    expected = np.asarray(keras.saving.load_model(tmp_path / "run" / "model.keras")(feed, training=False))
    got = signature(**{name: tf.constant(value) for name, value in feed.items()})["output"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
