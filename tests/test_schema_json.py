"""`fmtrain schema` is what editors check configs against: it accepts every shipped config, refuses
what validate refuses about model keys, defines each model type once under the name a user writes,
and stays small enough to load."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fmtrain import components
from fmtrain.cli import app
from fmtrain.config.loader import load_raw
from fmtrain.config.schema import Config, model_title

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
# 129,919 bytes with 15 model types and 16 sources (tfrecord, text_corpus and hub added);
# 148,471 before model types were defined once; 140,771 once image_folder and text_folder stream (3 keys each).
MAX_BYTES = 141_500


@pytest.fixture(scope="module")
def validator():
    schema = Config.model_json_schema(mode="validation")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, config: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_passes_the_json_schema(validator, path):
    data, _ = load_raw(path)  # extends: resolved, as validate sees it

    assert _errors(validator, data) == []


BASE = {"name": "t", "data": {"source": "digits"}}


@pytest.mark.parametrize(
    "model, ok",
    [
        ({"type": "cnn", "filters": [8], "init_from": "runs/a", "freeze": ["conv_*"]}, True),
        ({"type": "cnn", "filters": [8], "pool": "max", "bogus": 1}, False),
        ({"type": "multimodal", "encoders": {"image": {"type": "cnn", "filters": [8]}}}, True),
        ({"type": "multimodal", "encoders": {"image": {"type": "cnn", "filters": [8], "init_from": "x"}}}, False),
        ({"type": "multimodal", "encoders": {"ids": {"type": "two_tower"}}}, False),
    ],
    ids=["transfer_keys", "unknown_key", "encoder", "transfer_key_in_encoder", "not_an_encoder_type"],
)
def test_the_schema_refuses_model_keys_as_validate_does(validator, tmp_path, model, ok):
    config = {**BASE, "model": model}
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    validated = CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0

    assert validated == ok
    assert (_errors(validator, config) == []) == ok


def test_each_model_type_is_defined_once_under_the_name_users_write():
    defs = Config.model_json_schema(mode="validation")["$defs"]

    assert [name for name in defs if "__" in name] == []
    assert {name for name in defs if name.endswith("Model")} == {model_title(t) for t in components.MODELS.names()}
    assert not {entry.params.__name__ for entry in components.MODELS.entries()} & set(defs)
    assert defs["CnnModel"]["properties"]["type"]["const"] == "cnn"


def test_the_schema_stays_small():
    result = CliRunner().invoke(app, ["schema"])

    assert result.exit_code == 0
    assert len(result.stdout.encode()) <= MAX_BYTES
