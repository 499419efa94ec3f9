"""``fmtrain init``: starter configs from the templates the package ships, which stay the repository's configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_startup_speed import _probe
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.commands.init import templates
from fmtrain.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_packaged_templates_are_the_repositorys_configs():
    configs = {path.stem: path.read_text(encoding="utf-8") for path in (ROOT / "configs").glob("*.yaml")}
    assert templates() == configs, "copy them again: cp configs/*.yaml fmtrain/templates/"


def test_the_templates_are_package_data():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib is 3.11+; fmtrain supports 3.10
    section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"templates/*.yaml"' in section


@pytest.mark.parametrize("template", ["digits_mlp", "mnist_cnn", "text_transformer", "recommender_two_tower"])
def test_init_writes_the_commented_template_and_it_validates(tmp_path, monkeypatch, template):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init", template])
    assert result.exit_code == 0, result.output
    written = (tmp_path / f"{template}.yaml").read_text(encoding="utf-8")
    assert written == (ROOT / "configs" / f"{template}.yaml").read_text(encoding="utf-8")
    assert written.startswith("# ")  # the comments that explain it come along
    assert load_config(tmp_path / f"{template}.yaml").name == template
    assert f"fmtrain fit {template}.yaml" in result.output


def test_init_names_the_run_after_the_file_and_writes_the_base_it_extends(tmp_path):
    target = tmp_path / "exp" / "my-finetune.yaml"
    result = CliRunner().invoke(app, ["init", "transfer_finetune", str(target)])
    assert result.exit_code == 0, result.output
    cfg = load_config(target)
    assert cfg.name == "my-finetune" and cfg.train.epochs == 6  # from the template, through its base
    assert (tmp_path / "exp" / "digits_mlp.yaml").read_text() == (ROOT / "configs" / "digits_mlp.yaml").read_text()
    again = CliRunner().invoke(app, ["init", "transfer_finetune", str(tmp_path / "exp" / "other.yaml")])
    assert again.exit_code == 0 and "digits_mlp.yaml" not in again.output  # an identical base is left alone


def test_init_into_a_folder_writes_template_yaml_there(tmp_path):
    result = CliRunner().invoke(app, ["init", "vit_small", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path / "vit_small.yaml").model.type == "vit"


def test_init_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "mine.yaml"
    target.write_text("# my own\n")
    result = CliRunner().invoke(app, ["init", "digits_mlp", str(target)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: init: {target} exists; choose another PATH or overwrite it with --force"
    assert target.read_text() == "# my own\n"
    forced = CliRunner().invoke(app, ["init", "digits_mlp", str(target), "--force"])
    assert forced.exit_code == 0
    assert load_config(target).model.type == "mlp"


def test_an_unknown_template_exits_2_with_the_list(tmp_path):
    result = CliRunner().invoke(app, ["init", "digits_mpl", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2
    assert "did you mean 'digits_mlp'" in result.stderr
    assert all(name in result.stderr for name in templates())
    assert not (tmp_path / "x.yaml").exists()
    path_first = CliRunner().invoke(app, ["init", "x.yaml"])
    assert path_first.exit_code == 2 and "the path comes second: fmtrain init digits_mlp x.yaml" in path_first.stderr


def test_init_list_shows_each_template_with_its_first_line():
    result = CliRunner().invoke(app, ["init", "--list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == len(templates())
    assert any(line.startswith("digits_mlp") and "bundled 8×8 digits" in line for line in lines)


def test_init_imports_no_numpy_or_tensorflow(tmp_path):
    report, _ = _probe(["init", "vit_small", str(tmp_path / "v.yaml")], tmp_path)
    print(f"fmtrain init: {report['seconds']:.3f} s")
    assert report["code"] == 0 and report["heavy"] == []
    assert (tmp_path / "v.yaml").exists()
