"""Property: whatever arrives — YAML text, files on disk, extends chains, --set strings — loading
either succeeds or raises ConfigError with one printable line per problem, each naming where.

Derandomized and database-free, so CI runs the same examples every time; a few seconds each.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.config import load_config, parse_config_text
from fmtrain.errors import ConfigError

FUZZ = settings(deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["name", "seed", "data", "source", "path", "model", "type", "layers", "Dense", "units", "optimizer",
        "learning_rate", "schedule", "loss", "metrics", "train", "epochs", "preprocess", "rescale", "scale",
        "early_stopping", "checkpoint", "batch_size", "validation_split", "hidden_units", "extends", "<<",
        "init_from", "weights"]
# Names no file can have, or that stretch path handling: a null byte, an unknown user's home, a
# name too long for the file system, a newline, nothing at all.
PATHS = ["a\0b.csv", "\0", "~nosuchuser/x.csv", "~", "../../x", "x" * 300, "a/" * 50, "line\nbreak.yaml", "",
         ".", "/", "base.yaml", "child.yaml", "missing.yaml", "d.csv", "runs/x"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["mlp", "digits", "adam", "cosine", "auto", "accuracy"]),
                    st.sampled_from(PATHS))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=25)
small_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)), max_leaves=6)
VALID = {"name": "x", "data": {"source": "digits"}, "model": {"type": "mlp"}, "train": {"epochs": 1}}

# YAML that safe_dump never writes: aliases, merge keys, tags, numbers and dates in odd spellings.
SNIPPETS = ["", "x: &a [1, 2]\ny: *a\n", "x: &a {k: 1}\ny: {<<: *a, k: 2}\n", "y: {<<: [1]}\n", "n: 1e3\n",
            "d: 2024-13-01\n", "i: !!int x\n", "f: !!float ''\n", "b: !!bool maybe\n", "s: !!str 1e3\n",
            "r: &r [*r]\n", "k: {? [1, 2] : x}\n", "big: " + "9" * 5000 + "\n", "q: !!set {a, b}\n", "=: 1\n"]
paths = st.sampled_from(PATHS) | small_values
data_sections = st.fixed_dictionaries({"source": st.sampled_from(["csv", "digits", "image_folder"])},
                                      optional={"path": paths})
model_sections = st.fixed_dictionaries(
    {"type": st.sampled_from(["mlp", "applications"])},
    optional={"init_from": paths, "weights": paths, "backbone": st.just("MobileNetV2")},
)
extras = st.just("") | st.sampled_from(SNIPPETS)  # half the files plain, so the rest of loading is reached
documents = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["t", "1e3"]) | st.text(max_size=8),
        "extends": st.sampled_from(["base.yaml", "child.yaml"]) | st.lists(st.sampled_from(PATHS), max_size=3) | paths,
        "data": data_sections | small_values,
        "model": model_sections | small_values,
        "optimizer": small_values,
        "train": small_values,
    },
)
OVERRIDE_KEYS = ["data.path", "model.init_from", "model.weights", "name", "optimizer.learning_rate", "train.epochs",
                 "preprocess.0.rescale.scale", "metrics.-1", "data", "model", "extends", "a..b", "", "data.0",
                 "train.epochs.x", "metrics.²"]
override_values = st.one_of(st.text(max_size=20), small_values.map(json.dumps), st.sampled_from(PATHS + SNIPPETS))
overrides = st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(OVERRIDE_KEYS) | st.text(max_size=8),
                               override_values) | st.text(max_size=10), max_size=3)


@settings(FUZZ, max_examples=150)
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_random_documents_raise_only_config_errors(document):
    _validate(yaml.safe_dump(document))


@settings(FUZZ, max_examples=150)
@given(st.sampled_from(["data", "model", "train", "optimizer", "loss", "metrics", "preprocess", "seed"]), values)
def test_mutating_one_section_of_a_valid_config_raises_only_config_errors(section, value):
    _validate(yaml.safe_dump({**VALID, section: value}))


@settings(FUZZ, max_examples=100)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_config_errors(text):
    _validate(text)


@settings(FUZZ, max_examples=100)
@given(child=documents, child_extra=extras, base=st.none() | documents, base_extra=extras, sets=overrides)
def test_loading_files_extends_and_overrides_raises_only_config_errors(child, child_extra, base, base_extra, sets):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "child.yaml"
        path.write_text(yaml.safe_dump(child) + child_extra if child else child_extra)
        if base is not None:
            (Path(folder) / "base.yaml").write_text(yaml.safe_dump(base) + base_extra)
        try:
            load_config(path, sets)
        except ConfigError as exc:
            _assert_one_line_per_problem(str(exc), (folder, "--set "))


def _validate(text: str) -> None:
    try:
        parse_config_text(text, "fuzz.yaml")
    except ConfigError as exc:
        _assert_one_line_per_problem(str(exc), ("fuzz.yaml", "<string>"))


def _assert_one_line_per_problem(message: str, origins: tuple[str, ...]) -> None:
    lines = message.split("\n")
    assert lines[0].startswith(origins), message
    for line in lines:
        assert line.isprintable(), f"a line with a line break or control character: {line!r}"
        assert line.startswith(origins) or re.fullmatch(r"… and \d+ more problems", line), line


# --------------------------------------------------------------------------- what the fuzzer found


GOOD = "name: t\ndata: {source: digits}\nmodel: {type: mlp}\n"


@pytest.mark.parametrize(
    "text, line",
    [
        ('name: t\ndata: {source: csv, path: "a\\0b.csv"}\nmodel: {type: mlp}\n', 2),
        ('name: t\ndata: {source: digits}\nmodel: {type: mlp, init_from: "run\\0"}\n', 3),
        ('name: t\ndata: {source: digits}\nmodel:\n  type: applications\n  backbone: MobileNetV2\n'
         '  weights: "w\\0.h5"\n', 6),
        ('extends: "base\\0.yaml"\n' + GOOD, 1),
        ('extends: [base.yaml, "\\0"]\n' + GOOD, 1),
    ],
    ids=["data.path", "model.init_from", "model.weights", "extends", "extends-list"],
)
def test_a_null_byte_in_a_path_is_bad_input_naming_where(tmp_path, text, line):
    (tmp_path / "base.yaml").write_text(GOOD)
    path = tmp_path / "c.yaml"
    path.write_text(text)

    result = CliRunner().invoke(app, ["validate", str(path)])

    assert result.exit_code == 2, result.output
    assert re.fullmatch(rf"error: {re.escape(str(path))}:{line}:\d+: .*null byte.*\n", result.stderr)


def test_a_null_byte_in_a_set_path_names_the_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)

    result = CliRunner().invoke(app, ["validate", str(path), "--set", 'model.init_from="run\\0"'])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith('error: --set model.init_from="run\\0": model.init_from: a path cannot contain')


def test_a_null_byte_in_the_config_file_name_is_bad_input():
    with pytest.raises(ConfigError, match=r"^c\\x00\.yaml: a file name cannot contain a null byte"):
        load_config("c\0.yaml")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("data: {source: csv, path: ~nosuchuser/d.csv}\n", r":1:\d+: data\.path: no home directory for '~nosuchuser'"),
        ("seed: 2024-13-01\n", r":1:7: cannot read '2024-13-01': month must be in 1\.\.12"),
        ("seed: !!int x\n", r":1:7: YAML tags such as !!int are not allowed"),
        ("seed: " + "9" * 5000 + "\n", r":1:7: cannot read '999.*': Exceeds the limit"),
        ("metrics: &m [accuracy, *m]\n", r":1:\d+: alias \*m is used inside its own anchor"),
        ('"a\\nb": 1\n', r":1:1: a\\nb: unknown key 'a\\nb'"),
    ],
    ids=["unknown-user", "no-such-date", "int-tag", "huge-int", "self-alias", "newline-in-key"],
)
def test_other_escapes_are_config_errors_in_one_line(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text + GOOD.replace("data:", "data:" if not text.startswith("data") else "# data:"))

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert re.match(re.escape(str(path)) + expected, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("override", ["metrics.²=x", "metrics.--1=x", "a\nb=1", "name=a\0b"])
def test_odd_override_keys_are_config_errors_in_one_line(tmp_path, override):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + "metrics: [accuracy]\n")

    with pytest.raises(ConfigError) as info:
        load_config(path, [override])

    assert str(info.value).startswith("--set ") and str(info.value).isprintable(), str(info.value)
