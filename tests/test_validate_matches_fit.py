"""``fmtrain validate`` refuses exactly what ``fmtrain fit`` refuses: a data key the chosen source does not read.

Each source's config class lists the keys its loader reads, so a misplaced key fails validation, on
the key's own line, with the sources that do read it; ``fit`` validates the same way before it
touches data, so it stops with the same line and writes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fmtrain.cli import app

# (id, the data section's lines before the misplaced key, the misplaced key's line, key path, message)
CASES = [
    ("iris-categorical", ["source: iris"], "categorical: [a]", "data.categorical",
     "not read by source 'iris' (only by csv); remove it"),
    ("iris-label", ["source: iris"], "label: species", "data.label",
     "not read by source 'iris' (only by csv, interactions, npz, parquet, text_csv, text_jsonl or tfrecord); "
     "remove it"),
    ("digits-path", ["source: digits"], "path: digits.csv", "data.path",
     "not read by source 'digits' (only by cifar10, csv, fashion_mnist, image_folder, interactions, mnist, npz, "
     "text_corpus, text_csv, text_folder or text_jsonl); remove it"),
    ("mnist-features", ["source: mnist", "path: mnist.npz"], "features: [x]", "data.features",
     "not read by source 'mnist' (only by csv, npz, parquet or tfrecord); remove it"),
    ("csv-image_size", ["source: csv", "path: d.csv"], "image_size: [8, 8]", "data.image_size",
     "not read by source 'csv' (only by image_folder); remove it"),
    ("npz-categorical", ["source: npz", "path: d.npz"], "categorical: [a]", "data.categorical",
     "not read by source 'npz' (only by csv); remove it"),
    ("text_csv-inputs", ["source: text_csv", "path: t.csv"], "inputs: {numeric: [a]}", "data.inputs",
     "not read by source 'text_csv' (only by csv or npz); remove it"),
    ("text_jsonl-features", ["source: text_jsonl", "path: t.jsonl"], "features: [words]", "data.features",
     "not read by source 'text_jsonl' (only by csv, npz, parquet or tfrecord); remove it"),
    ("image_folder-text", ["source: image_folder", "path: images"], "text: caption", "data.text",
     "not read by source 'image_folder' (only by text_csv or text_jsonl); remove it"),
    ("text_folder-label", ["source: text_folder", "path: texts"], "label: topic", "data.label",
     "not read by source 'text_folder' (only by csv, interactions, npz, parquet, text_csv, text_jsonl or tfrecord); "
     "remove it"),
    ("synthetic_sentiment-path", ["source: synthetic_sentiment"], "path: s.csv", "data.path",
     "not read by source 'synthetic_sentiment' (only by cifar10, csv, fashion_mnist, image_folder, interactions, "
     "mnist, npz, text_corpus, text_csv, text_folder or text_jsonl); remove it"),
    ("synthetic_multimodal-inputs", ["source: synthetic_multimodal"], "inputs: {image: pixels}", "data.inputs",
     "not read by source 'synthetic_multimodal' (only by csv or npz); remove it"),
    ("interactions-color_mode", ["source: interactions", "path: r.csv"], "color_mode: rgb", "data.color_mode",
     "not read by source 'interactions' (only by image_folder); remove it"),
    ("iris-options", ["source: iris"], "options: {n: 100}", "data.options",
     "not read by source 'iris' (only by synthetic_multimodal, synthetic_ratings or synthetic_sentiment); remove it"),
    ("synthetic_ratings-unknown-option", ["source: synthetic_ratings"], "options: {num_user: 5}",
     "data.options.num_user", "unknown key 'num_user' (did you mean 'num_users'?)"),
    ("tfrecord-path", ["source: tfrecord", "files: {train: t-*.tfrecord}", "label: y",
                       "features: {x: {dtype: float32, shape: [4]}, y: {dtype: int64}}"], "path: d.csv", "data.path",
     "not read by source 'tfrecord' (only by "),
    ("parquet-path", ["source: parquet", "files: {train: t-*.parquet}", "label: y"], "path: d.csv", "data.path",
     "not read by source 'parquet' (only by "),
    ("text_corpus-label", ["source: text_corpus", "path: t.txt"], "label: y", "data.label",
     "not read by source 'text_corpus' (only by "),
    ("digits-regression", ["source: digits"], "task: regression", "data.task",
     "source 'digits' is a classification data set; remove data.task or set it to classification"),
    ("image_folder-shuffle_buffer", ["source: image_folder", "path: images"], "shuffle_buffer: 100",
     "data.shuffle_buffer", "shuffle_buffer is read with stream: true only; add stream: true or remove it"),
]
# Cases also run through fit: one per kind of source (bundled, file, generated) and of mistake.
FIT_CASES = {"iris-categorical", "digits-path", "npz-categorical", "synthetic_sentiment-path", "iris-options",
             "synthetic_ratings-unknown-option"}


def _config(tmp: Path, before: list[str], misplaced: str) -> tuple[Path, int]:
    """Write the config; return it and the line of the misplaced key."""
    lines = ["name: misplaced", "data:", *(f"  {line}" for line in before), f"  {misplaced}",
             "model: {type: mlp, hidden_units: [4]}", "train: {epochs: 1}"]
    path = tmp / "c.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, lines.index(f"  {misplaced}") + 1


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


@pytest.mark.parametrize("case_id, before, misplaced, key, message", [pytest.param(*c, id=c[0]) for c in CASES])
def test_validate_refuses_a_key_the_source_does_not_read_on_its_line(tmp_path, monkeypatch, case_id, before,
                                                                     misplaced, key, message):
    monkeypatch.chdir(tmp_path)
    path, line = _config(tmp_path, before, misplaced)

    result = CliRunner().invoke(app, ["validate", str(path)])

    assert result.exit_code == 2, result.output
    error = _one_error_line(result.output)
    assert re.match(rf"error: {re.escape(str(path))}:{line}:\d+: {re.escape(key)}: ", error), error
    assert message in error


@pytest.mark.parametrize("case_id, before, misplaced, key, message",
                         [pytest.param(*c, id=c[0]) for c in CASES if c[0] in FIT_CASES])
def test_fit_refuses_it_with_the_same_line_and_writes_nothing(tmp_path, monkeypatch, case_id, before, misplaced,
                                                              key, message):
    monkeypatch.chdir(tmp_path)
    path, line = _config(tmp_path, before, misplaced)

    result = CliRunner().invoke(app, ["fit", str(path), "--runs-root", str(tmp_path / "runs")])

    assert result.exit_code == 2, result.output
    error = _one_error_line(result.output)
    assert re.match(rf"error: {re.escape(str(path))}:{line}:\d+: {re.escape(key)}: ", error), error
    assert error == _one_error_line(CliRunner().invoke(app, ["validate", str(path)]).output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # no run directory, nothing else


def test_the_corpus_covers_every_kind_of_source():
    from fmtrain.components import SOURCES

    covered = {SOURCES.get(before[0].removeprefix("source: ")).params for _, before, *_ in CASES}
    assert covered == {entry.params for entry in SOURCES.entries()}
