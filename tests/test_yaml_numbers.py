"""Numbers as people write them: ``3e-4``, ``1E-3``, ``.5`` and ``5.`` are floats everywhere.

PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent, so ``3e-4`` used to
arrive as the string "3e-4" and ``learning_rate: 3e-4`` was refused. The loader adds YAML 1.2's
float rule; these tests hold every float field of the schema to it, in a file and via --set.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fmtrain.cli import app
from fmtrain.config import load_config, validate_config
from fmtrain.config.schema import Config
from fmtrain.config.yaml_marks import dump_yaml, parse_yaml
from fmtrain.errors import ConfigError

SPELLINGS = {"1e-3": 0.001, "1E-3": 0.001, ".5": 0.5, "5.": 5.0}
BASE = {"name": "t", "data": {"source": "digits"}, "model": {"type": "mlp"}}
PLACEHOLDER = "NUMBER_GOES_HERE"

# Required keys of the objects that hold float fields, filled so only the float under test can fail.
# A new object with a required key and a float field fails test_every_float_field_is_found_with_a_context
# until it gets an entry here.
REQUIRED = {  # (class name or "*", key): value
    ("*", "path"): "data.file",  # file sources; validation does not open it
    ("ApplicationsModel", "backbone"): "MobileNetV2",
    ("VitModel", "patch_size"): 2,
    ("MultimodalModel", "encoders"): {"numeric": {"type": "mlp"}},
    ("ExponentialSchedule", "initial"): 0.1,
    ("ExponentialSchedule", "decay_steps"): 10,
    ("ExponentialSchedule", "decay_rate"): 0.5,
    ("CosineSchedule", "initial"): 0.1,
    ("PiecewiseSchedule", "boundaries"): [10],
    ("PiecewiseSchedule", "values"): [0.1, 0.01],
    ("TfrecordSource", "files"): {"train": "train-*.tfrecord"},
    ("TfrecordSource", "features"): {"x": {"dtype": "float32", "shape": [4]}, "y": {"dtype": "int64"}},
    ("TfrecordSource", "label"): "y",
    ("ParquetSource", "files"): {"train": "train-*.parquet"},
    ("ParquetSource", "label"): "y",
    ("HubModel", "task"): "text_classifier",
}
# Keys a definition needs beside its required ones (a rule between its fields); validation opens no file.
ALSO = {"HubModel": {"preset": "presets/tiny_bert"}}
# Other keys a float field needs beside it to validate at all (cross-field rules of the schema).
NEEDS = {
    ("train", "early_stopping"): {("data", "validation_split"): 0.2},
    ("preprocess", 0, "rescale", "range"): {("preprocess", 0, "rescale", "range"): [0.0, 1.0]},
}


def _number_fields(node: dict, path: tuple, context: dict, defs: dict, seen: frozenset) -> Iterator[tuple]:
    """Yield ``(path, context)`` for every number in the JSON Schema; ``context`` sets the keys it needs."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _number_fields(defs[name], path, {**context, "__def__": name}, defs, seen | {name})
        return
    if node.get("type") == "number":
        yield path, context
    for member in node.get("oneOf", []) + node.get("anyOf", []):
        yield from _number_fields(member, path, context, defs, seen)
    if "items" in node and isinstance(node["items"], dict):
        yield from _number_fields(node["items"], path + (0,), context, defs, seen)
    for index, item in enumerate(node.get("prefixItems", [])):
        yield from _number_fields(item, path + (index,), context, defs, seen)
    if isinstance(node.get("additionalProperties"), dict):  # e.g. model.encoders: {<input name>: {...}}
        yield from _number_fields(node["additionalProperties"], path + ("numeric",), context, defs, seen)
    properties = node.get("properties", {})
    if not properties:
        return
    owner = str(context.get("__def__")).rsplit("__", 1)[-1]  # the definition's name, e.g. VitModel
    inner = {k: v for k, v in context.items() if k != "__def__"}
    for key, sub in properties.items():
        if "const" in sub:  # a discriminator: model type, schedule
            inner[path + (key,)] = sub["const"]
    for key in node.get("required", []):
        if "const" not in properties[key] and not _in_base(path + (key,)):
            needed = REQUIRED.get((owner, key), REQUIRED.get(("*", key), KeyError(f"add REQUIRED[{owner!r}, {key!r}]")))
            inner.setdefault(path + (key,), needed)
    for key, value in ALSO.get(owner, {}).items():
        inner.setdefault(path + (key,), value)
    for key, sub in properties.items():
        yield from _number_fields(sub, path + (key,), inner, defs, seen)


def _in_base(path: tuple) -> bool:
    node: Any = BASE
    for segment in path:
        if not isinstance(node, dict) or segment not in node:
            return False
        node = node[segment]
    return True


def _all_number_fields() -> list[tuple[tuple, dict]]:
    schema = Config.model_json_schema(mode="validation")
    found: dict[tuple, tuple[tuple, dict]] = {}
    for path, context in _number_fields(schema, (), {}, schema["$defs"], frozenset()):
        context = {k: v for k, v in context.items() if k != "__def__"}
        for prefix, needs in NEEDS.items():
            if path[: len(prefix)] == prefix:
                context = {**context, **needs}
        key = (path, tuple(sorted((str(k), repr(v)) for k, v in context.items())))
        found.setdefault(key, (path, context))
    return list(found.values())


FIELDS = _all_number_fields()


def _field_id(field: tuple) -> str:
    path, context = field
    by_depth = sorted(context.items(), key=lambda kv: len(kv[0]))
    tags = [str(v) for k, v in by_depth if k[-1] in ("source", "type", "schedule")]
    return ".".join(map(str, path)) + (f"[{','.join(tags)}]" if tags else "")


def _set(document: dict, path: tuple, value: Any) -> None:
    node: Any = document
    for segment, following in zip(path[:-1], path[1:], strict=True):
        if isinstance(node, list):
            while len(node) <= segment:
                node.append({})
        elif not isinstance(node.get(segment), (dict, list)):
            node[segment] = [] if isinstance(following, int) else {}
        node = node[segment]
    if isinstance(node, list):
        while len(node) <= path[-1]:
            node.append(0.5)
    node[path[-1]] = value


def _document(path: tuple, context: dict, value: Any) -> dict:
    document = copy.deepcopy(BASE)
    for key_path, needed in sorted(context.items(), key=lambda kv: len(kv[0])):
        if isinstance(needed, KeyError):
            raise needed
        if key_path != path:
            _set(document, key_path, copy.deepcopy(needed))
    _set(document, path, value)
    return document


def _dumped(config: Config, path: tuple) -> Any:
    node: Any = config.model_dump()
    for segment in path:
        node = node[segment]
    return node


def _expected(document: dict) -> Config | str:
    """What validating the plain float gives: the config, or the error with no file position."""
    try:
        return validate_config(document)
    except ConfigError as exc:
        return str(exc)


# --------------------------------------------------------------------------- every float field


def test_every_float_field_is_found_with_a_context():
    paths = {path for path, _ in FIELDS}

    assert ("optimizer", "learning_rate") in paths
    assert ("optimizer", "learning_rate", "initial") in paths  # inside schedules
    assert ("data", "test_split") in paths and ("train", "early_stopping", "min_delta") in paths
    assert any(path[0] == "model" for path in paths) and any(path[0] == "preprocess" for path in paths)
    for path, context in FIELDS:  # every context is complete: the field validates with a plain float
        assert not isinstance(_expected(_document(path, context, 0.001)), str), _field_id((path, context))


@pytest.mark.parametrize("field", FIELDS, ids=_field_id)
@pytest.mark.parametrize("via", ["file", "set"])
def test_every_float_field_takes_every_spelling(tmp_path, field, via):
    path, context = field
    file = tmp_path / "c.yaml"
    dotted = ".".join(map(str, path))
    for spelling, number in SPELLINGS.items():
        expected = _expected(_document(path, context, number))
        if via == "file":
            text = yaml.safe_dump(_document(path, context, PLACEHOLDER), sort_keys=False)
            file.write_text(text.replace(PLACEHOLDER, spelling))
            overrides = []
        else:
            file.write_text(yaml.safe_dump(_document(path, context, 0.25), sort_keys=False))
            overrides = [f"{dotted}={spelling}"]
        if isinstance(expected, str):  # the range forbids this number: the same range error, not a type error
            with pytest.raises(ConfigError) as info:
                load_config(file, overrides)
            assert expected in str(info.value), f"{dotted}: {spelling}"
            continue
        loaded = _dumped(load_config(file, overrides), path)
        assert type(loaded) is float and loaded == number, f"{dotted}: {spelling} gave {loaded!r}"


# --------------------------------------------------------------------------- the places people meet it


def test_learning_rate_in_scientific_notation_validates_from_the_cli(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ndata: {source: digits}\nmodel: {type: mlp}\noptimizer: {learning_rate: 3e-4}\n")

    in_file = CliRunner().invoke(app, ["validate", str(path), "--show"])
    via_set = CliRunner().invoke(app, ["validate", str(path), "--show", "--set", "optimizer.learning_rate=1e-3"])

    assert in_file.exit_code == 0, in_file.output
    assert yaml.safe_load(in_file.stdout)["optimizer"]["learning_rate"] == 3e-4
    assert via_set.exit_code == 0, via_set.output
    assert yaml.safe_load(via_set.stdout)["optimizer"]["learning_rate"] == 1e-3


def test_optimizer_arguments_in_scientific_notation_reach_keras_as_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ndata: {source: digits}\nmodel: {type: mlp}\n"
                    "optimizer: {name: adamw, weight_decay: 1e-4, epsilon: 1E-7}\n")

    cfg = load_config(path, ["optimizer.beta_1=9e-1"])

    assert cfg.optimizer.args == {"weight_decay": 1e-4, "epsilon": 1e-7, "beta_1": 0.9}
    assert all(type(v) is float for v in cfg.optimizer.args.values())


def test_extends_bases_read_floats_the_same_way(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {source: digits}\nmodel: {type: mlp, dropout: 5e-1}\n"
                                        "optimizer: {learning_rate: 3e-4}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: t\ntrain: {early_stopping: {monitor: loss, min_delta: 1e-4}}\n")

    cfg = load_config(child)

    assert cfg.optimizer.learning_rate == 3e-4 and cfg.model.dropout == 0.5
    assert cfg.train.early_stopping.min_delta == 1e-4


@pytest.mark.parametrize(
    "text, value",
    [("3", 3), ("-3", -3), ("1_000", 1000), ("0x1f", 31), ("1.0e-3", 0.001), ("1.5e3", 1500.0), ("+1e3", 1000.0),
     ("-.5", -0.5), (".inf", math.inf), ("-.Inf", -math.inf), ("true", True), ("1e", "1e"), ("e3", "e3"),
     ("1.2.3", "1.2.3"), ("3e-4x", "3e-4x"), ("'1e3'", "1e3"), ('"3e-4"', "3e-4"), ("!!str 1e3", "1e3")],
)
def test_only_numbers_become_numbers(text, value):
    data, _ = parse_yaml(f"x: {text}\n", "t.yaml")

    assert data["x"] == value and type(data["x"]) is type(value)


def test_nan_is_still_a_float():
    data, _ = parse_yaml("x: .nan\n", "t.yaml")

    assert math.isnan(data["x"])


# --------------------------------------------------------------------------- text that now reads as a number


def test_a_run_name_that_reads_as_a_number_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: 1e3\ndata: {source: digits}\nmodel: {type: mlp}\n")

    message = _error(path)

    assert message.startswith(f"{path}:1:1: name: Input should be a valid string, found 1000.0")
    assert "put it in quotes" in message and "\n" not in message


def test_a_quoted_run_name_stays_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: '1e3'\ndata: {source: digits}\nmodel: {type: mlp}\n")

    assert load_config(path).name == "1e3"
    assert load_config(path, ['name="2e5"']).name == "2e5"


def test_a_column_label_that_reads_as_a_number_via_set_names_the_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ndata: {source: csv, path: d.csv}\nmodel: {type: mlp}\n")

    message = _error(path, ["data.label=1e3"])

    assert message.startswith("--set data.label=1e3: data.label: Input should be a valid string, found 1000.0")
    assert "put it in quotes" in message


def test_a_file_named_like_a_number_keeps_its_name(tmp_path):
    path = tmp_path / "1e3.yaml"
    path.write_text("data: {source: digits}\nmodel: {type: mlp}\n")

    assert load_config(path).name == "1e3"  # the default name is the file's stem, never parsed as YAML


def test_dump_yaml_quotes_text_that_reads_as_a_number():
    data = {"name": "1e3", "label": "1E-3", "rate": 3e-4, "tiny": 1e-12, "columns": [".5", "5.", "x"]}

    assert parse_yaml(dump_yaml(data), "t.yaml")[0] == data


def test_a_resolved_config_with_number_like_text_loads_back_from_dump_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: '1e3'\ndata: {source: csv, path: d.csv, label: '2E5'}\nmodel: {type: mlp}\n"
                    "optimizer: {learning_rate: 3e-4}\n")
    cfg = load_config(path)
    written = tmp_path / "config.yaml"  # as a run directory records it, for --resume
    written.write_text(dump_yaml(cfg.to_yaml_dict()))

    assert load_config(written) == cfg


def _error(path: Path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)
