"""`fmtrain report RUN_DIR RUN_DIR …`: the comparison page, from fake run directories (no TensorFlow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.config import dump_yaml
from fmtrain.config.flat import flatten_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def _config(learning_rate: float, name: str = "digits_mlp") -> dict:
    return {"name": name, "seed": 42, "data": {"source": "digits", "batch_size": 32},
            "preprocess": [{"rescale": {"scale": 0.0625, "offset": 0.0}}],
            "model": {"type": "mlp", "hidden_units": [128], "dropout": 0.1},
            "optimizer": {"name": "adam", "learning_rate": learning_rate, "clipnorm": None},
            "metrics": ["accuracy", "f1"], "train": {"epochs": 3}}


def make_run(path: Path, learning_rate: float, accuracy: float, *, epochs: int = 3, name: str = "digits_mlp",
             val: bool = True) -> Path:
    """A run directory as fit writes it: config.yaml, metrics.json, history.csv (with lr)."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(dump_yaml(_config(learning_rate, name)))
    final = {"train": {"loss": 0.1, "accuracy": accuracy + 0.01}, "val": {"loss": 0.2, "accuracy": accuracy} if val
             else None, "test": {"loss": 0.15, "accuracy": accuracy}}
    (path / "metrics.json").write_text(json.dumps({
        "schema_version": 1, "name": name, "task": "classification", "final": final, "epochs_run": epochs,
        "best_epoch": epochs, "timing": {"fit_seconds": 2.5}}))
    header = "epoch,loss,accuracy" + (",val_loss,val_accuracy" if val else "") + ",lr,seconds"
    rows = [header]
    for epoch in range(1, epochs + 1):
        vals = f",{1.2 / epoch},{accuracy - 0.1 / epoch}" if val else ""
        rows.append(f"{epoch},{1.0 / epoch},{accuracy - 0.05 / epoch}{vals},{learning_rate / epoch},0.5")
    (path / "history.csv").write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    return (make_run(tmp_path / "runs" / "lr_small", 0.001, 0.91),
            make_run(tmp_path / "runs" / "lr_large", 0.01, 0.97))


def _images(html: str) -> list[str]:
    return re.findall(r'<img[^>]*src="([^"]+)"', html)


def test_compare_names_both_runs_shows_only_the_differing_key_and_writes_its_plots(two_runs, tmp_path):
    small, large = two_runs
    output = tmp_path / "out" / "compare.html"
    result = runner.invoke(app, ["report", str(small), str(large), "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(output)
    html = output.read_text()
    assert "lr_small" in html and "lr_large" in html
    diff = html.split("<h2>Config differences</h2>")[1].split("<h2>")[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", diff)
    assert rows == [("optimizer.learning_rate", "0.001", "0.01")]  # the only key that differs
    assert "seed" not in diff and "hidden_units" not in diff
    final = html.split("<h2>Final metrics</h2>")[1].split("<h2>")[0]
    assert re.search(r"<td>test accuracy</td><td>0.91</td><td>0.97</td>", final)
    images = _images(html)
    assert images == ["compare_plots/loss.png", "compare_plots/accuracy.png", "compare_plots/lr.png"]
    for src in images:
        assert (output.parent / src).read_bytes().startswith(PNG_SIGNATURE)
    # Both runs are drawn: matplotlib's first two colours, one per run (a run left out loses its colour).
    colours = set(Image.open(output.parent / "compare_plots" / "accuracy.png").convert("RGB").getdata())
    assert {(0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)} <= colours


def test_compare_markdown_and_labels_of_runs_with_the_same_folder_name(tmp_path):
    a = make_run(tmp_path / "exp_a" / "20261202-010203", 0.001, 0.9)
    b = make_run(tmp_path / "exp_b" / "20261202-010203", 0.001, 0.9, name="other")
    (b / "config.yaml").write_text((b / "config.yaml").read_text().replace("  dropout: 0.1\n",
                                                                          "  dropout: 0.1\n  batch_norm: true\n"))
    output = tmp_path / "compare.md"
    result = runner.invoke(app, ["report", str(a), str(b), "--output", str(output)])
    assert result.exit_code == 0, result.output
    md = output.read_text()
    assert "| config key | exp_a/20261202-010203 | exp_b/20261202-010203 |" in md
    assert "| name | digits_mlp | other |" in md
    assert "| model.batch_norm | (not set) | true |" in md  # a key only the newer run's config has
    assert "![accuracy per epoch](compare_plots/accuracy.png)" in md


def test_identical_configs_say_so(tmp_path):
    a = make_run(tmp_path / "a", 0.001, 0.9)
    b = make_run(tmp_path / "b", 0.001, 0.8, val=False)
    output = tmp_path / "same.html"
    assert runner.invoke(app, ["report", str(a), str(b), "--output", str(output)]).exit_code == 0
    html = output.read_text()
    assert "None: all " in html and "keys are the same in every run" in html
    assert re.search(r"<td>val accuracy</td><td>0.9</td><td>—</td>", html)  # b has no validation split


@pytest.mark.parametrize(("args", "message"), [
    (["{a}", "--output", "{tmp}/x.html"], "--output {tmp}/x.html: compares several runs"),
    (["{a}", "{a}"], "given twice"),
    (["{a}", "{tmp}/nowhere"], "{tmp}/nowhere: run directory not found"),
    (["{a}", "{a}/../b", "--output", "{tmp}/x.pdf"], "--output {tmp}/x.pdf: expected a .html or .md file"),
])
def test_bad_report_arguments_exit_2_with_one_line(tmp_path, args, message):
    make_run(tmp_path / "a", 0.001, 0.9)
    make_run(tmp_path / "b", 0.002, 0.9)
    fill = {"a": tmp_path / "a", "tmp": tmp_path}
    result = runner.invoke(app, ["report", *(arg.format(**fill) for arg in args)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message.format(**fill) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("x.*"))


def test_flatten_config_keys():
    flat = flatten_config({"a": {"b": 1, "c": [1, 2]}, "p": [{"rescale": {"scale": 2}}], "e": {}, "n": None})
    assert flat == {"a.b": 1, "a.c": [1, 2], "p.0.rescale.scale": 2, "e": {}, "n": None}
