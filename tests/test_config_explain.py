"""``fmtrain config show --explain``: each resolved value with where it came from."""

from __future__ import annotations

from pathlib import Path

from test_startup_speed import _probe
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.config import load_config
from fmtrain.config.provenance import explain_config

BASE = """\
# the base of the chain
seed: 7
data:
  source: digits
  batch_size: 64
model: {type: mlp, hidden_units: [32, 16]}
loss: sparse_categorical_crossentropy
train: {epochs: 9}
"""
TOP = """\
extends: shared/base.yaml
name: explained
data:
  validation_split: 0.1
model:
  dropout: 0.2
preprocess:
  - rescale: {scale: 0.0625}
train: {epochs: 4}
"""


def _chain(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "base.yaml").write_text(BASE)
    top = tmp_path / "top.yaml"
    top.write_text(TOP)
    return top


def test_each_value_names_the_file_line_of_the_chain_the_set_or_default(tmp_path):
    top = _chain(tmp_path)
    base = tmp_path / "shared" / "base.yaml"
    cfg, rows = explain_config(top, ["train.epochs=3", "model.hidden_units.1=8"])
    sources = {row.key: str(row.source) for row in rows}
    values = {row.key: row.value for row in rows}
    assert sources["name"] == f"{top}:2:1"
    assert sources["seed"] == f"{base}:2:1 (extends)"
    assert sources["data.batch_size"] == f"{base}:5:3 (extends)"
    assert sources["data.validation_split"] == f"{top}:4:3"
    assert sources["model.dropout"] == f"{top}:6:3"
    assert sources["train.epochs"] == "--set train.epochs=3"  # over the top file's 4, over the base's 9
    assert sources["model.hidden_units"] == "--set model.hidden_units.1=8"
    assert sources["preprocess.0.rescale.scale"] == f"{top}:8:15"
    assert sources["preprocess.0.rescale.offset"] == "default"
    assert sources["optimizer.learning_rate"] == "default" and sources["data.test_split"] == "default"
    assert values["train.epochs"] == 3 and values["model.hidden_units"] == [32, 8] and values["seed"] == 7
    assert cfg == load_config(top, ["train.epochs=3", "model.hidden_units.1=8"])  # the loader's result, unchanged
    assert [row.key.split(".")[0] for row in rows][:2] == ["name", "seed"]  # in the resolved config's order


def test_the_run_name_from_the_file_name_says_so(tmp_path):
    config = tmp_path / "nameless.yaml"
    config.write_text("data: {source: digits}\nmodel: {type: mlp}\n")
    _, rows = explain_config(config)
    assert next(str(r.source) for r in rows if r.key == "name") == f"{config} (from the file name)"


def test_config_show_explain_prints_one_aligned_line_per_value(tmp_path):
    top = _chain(tmp_path)
    result = CliRunner().invoke(app, ["config", "show", str(top), "--set", "train.epochs=3", "--explain"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("train.epochs: 3 ") and line.endswith("# --set train.epochs=3") for line in lines)
    assert any(line.startswith("data.shuffle: true ") and line.endswith("# default") for line in lines)
    assert len({line.index("#") for line in lines if len(line.split("#")[0]) < 60}) == 1


def test_config_show_without_explain_is_the_resolved_yaml(tmp_path):
    top = _chain(tmp_path)
    shown = CliRunner().invoke(app, ["config", "show", str(top), "--set", "train.epochs=3"])
    validated = CliRunner().invoke(app, ["validate", str(top), "--set", "train.epochs=3", "--show"])
    assert shown.exit_code == 0 and shown.output == validated.output
    assert "epochs: 3" in shown.output


def test_a_bad_config_is_one_error_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("data: {source: digits, batch_sise: 32}\nmodel: {type: mlp}\n")
    result = CliRunner().invoke(app, ["config", "show", str(config), "--explain"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {config}:1:") and "batch_size" in result.stderr


def test_config_show_imports_no_numpy_or_tensorflow(tmp_path):
    top = _chain(tmp_path)
    report, done = _probe(["config", "show", str(top), "--explain"], tmp_path)
    print(f"fmtrain config show --explain: {report['seconds']:.3f} s")
    assert report["code"] == 0 and report["heavy"] == []
    assert "# default" in done.stdout
