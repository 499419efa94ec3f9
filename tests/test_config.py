"""Config loading and validation: every error a user can make names the file, line, key and the fix.

No TensorFlow here: these run in `make test-fast`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fmtrain.config import load_config, parse_config_text, validate_config
from fmtrain.config.loader import apply_override, deep_merge
from fmtrain.config.yaml_marks import Marks
from fmtrain.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml"))

VALID = """\
name: t
data:
  source: digits
model:
  type: mlp
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _error(path: Path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def _line_of(text: str, fragment: str) -> int:
    """1-based number of the first line of ``text`` containing ``fragment``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


# --------------------------------------------------------------------------- shipped configs


def test_configs_are_shipped():
    assert len(SHIPPED) >= 3


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)

    assert cfg.name == path.stem  # runs/<name>/ matches the file users pass


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_resolved_shipped_config_round_trips_through_yaml(path):
    cfg = load_config(path)

    again = validate_config(yaml.safe_load(yaml.safe_dump(cfg.to_yaml_dict(), sort_keys=False)))

    assert again == cfg


def test_resolved_config_round_trips_with_schedules_arguments_and_extras(tmp_path):
    path = _write(tmp_path / "rich.yaml", """\
        name: rich
        data: {source: digits, validation_split: 0.2}
        preprocess:
          - rescale: {range: [0, 1]}
          - flatten: {}
          - one_hot: {num_classes: 10}
        model:
          type: sequential
          layers:
            - Dense: {units: 8, activation: relu}
            - Dropout:
        optimizer:
          name: sgd
          momentum: 0.9
          learning_rate: {schedule: piecewise, boundaries: [10, 20], values: [0.1, 0.01, 0.001]}
        loss: {categorical_crossentropy: {from_logits: true}}
        metrics: [accuracy, {f1: {average: micro}}, {top_k: {k: 3}}]
        train: {early_stopping: {monitor: val_accuracy, mode: max}}
        """)
    cfg = load_config(path)

    dumped = cfg.to_yaml_dict()
    again = validate_config(yaml.safe_load(yaml.safe_dump(dumped, sort_keys=False)))

    assert again == cfg
    assert again.optimizer.args == {"momentum": 0.9}
    assert dumped["loss"] == {"categorical_crossentropy": {"from_logits": True}}
    assert dumped["metrics"][0] == "accuracy"  # written back in the short YAML spelling
    assert list(dumped) == ["name", "seed", "data", "preprocess", "model", "optimizer", "loss", "metrics", "train"]


def test_validated_config_is_immutable():
    cfg = load_config(SHIPPED[0])

    with pytest.raises(ValidationError):
        cfg.train.epochs = 1


# --------------------------------------------------------------------------- unknown keys, types, ranges


def test_unknown_top_level_key_names_file_line_and_closest_key(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "trian:\n  epochs: 3\n")

    message = _error(path)

    assert message.startswith(f"{path}:6:1: trian: unknown key 'trian'")
    assert "did you mean 'train'" in message


def test_unknown_nested_key_gives_key_path_and_column(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "train:\n  epoch: 3\n")

    message = _error(path)

    assert message.startswith(f"{path}:7:3: train.epoch:")
    assert "did you mean 'epochs'" in message
    assert "'early_stopping'" in message  # the valid keys are listed


def test_each_problem_gets_its_own_line(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "seeed: 1\ntrian: {}\n")

    lines = _error(path).splitlines()

    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:6:1: seeed:") and "'seed'" in lines[0]
    assert lines[1].startswith(f"{path}:7:1: trian:") and "'train'" in lines[1]


def test_many_problems_are_capped_with_a_count(tmp_path):
    extra = "".join(f"bogus_{i}: 1\n" for i in range(13))
    path = _write(tmp_path / "c.yaml", VALID + extra)

    lines = _error(path).splitlines()

    assert len(lines) == 11
    assert "3 more problems" in lines[-1]


def test_wrong_type_shows_the_value_found(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "train:\n  epochs: lots\n")

    message = _error(path)

    assert message.startswith(f"{path}:7:3: train.epochs:")
    assert "integer" in message and "found 'lots'" in message


@pytest.mark.parametrize(
    "snippet, key, found",
    [
        ("train:\n  epochs: 0\n", "train.epochs", "found 0"),
        ("train:\n  early_stopping: {patience: -1, monitor: loss}\n", "train.early_stopping.patience", "found -1"),
        ("optimizer:\n  learning_rate: -0.1\n", "optimizer.learning_rate", "found -0.1"),
    ],
)
def test_out_of_range_value_names_key_and_value(tmp_path, snippet, key, found):
    text = VALID + snippet
    path = _write(tmp_path / "c.yaml", text)

    message = _error(path)

    assert f"{path}:{len(VALID.splitlines()) + 2}:" in message
    assert f"{key}:" in message and found in message


def test_out_of_range_fraction_in_a_flow_mapping_points_at_its_column(tmp_path):
    path = _write(tmp_path / "c.yaml", "name: t\ndata: {source: digits, test_split: 1.5}\nmodel: {type: mlp}\n")

    message = _error(path)

    assert message.startswith(f"{path}:2:24: data.test_split:")
    assert "less than 1" in message and "1.5" in message


def test_splits_that_leave_no_training_data_are_refused(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID.replace("  source: digits\n", "  source: digits\n  test_split: 0.6\n"
                                                     "  validation_split: 0.5\n"))

    message = _error(path)

    assert f"{path}:2:1: data:" in message and "no training data" in message


def test_missing_required_section_is_named(tmp_path):
    path = _write(tmp_path / "c.yaml", "name: t\nmodel: {type: mlp}\n")

    message = _error(path)

    assert "data: required key is missing" in message


# --------------------------------------------------------------------------- names resolved by registries and Keras


@pytest.mark.parametrize(
    "text, key, wrong, right",
    [
        (VALID.replace("digits", "digts"), "data.source", "unknown data source 'digts'", "digits"),
        (VALID.replace("mlp", "mpl"), "model.type", "unknown model type 'mpl'", "mlp"),
        (VALID + "  activation: rellu\n", "model.activation", "unknown activation 'rellu'", "relu"),
        (VALID + "optimizer: {name: rmsprob}\n", "optimizer.name", "unknown optimizer 'rmsprob'", "rmsprop"),
        (VALID + "loss: sparse_categorical_crossentropi\n", "loss", "unknown loss 'sparse_categorical_crossentropi'",
         "sparse_categorical_crossentropy"),
        (VALID + "metrics: [accuracy, acuracy]\n", "metrics.1", "unknown metric 'acuracy'", "accuracy"),
        (VALID + "metrics: [f1, precison]\n", "metrics.1", "unknown metric 'precison'", "precision"),
    ],
    ids=["source", "model_type", "activation", "optimizer", "loss", "metric", "fmtrain_metric"],
)
def test_unknown_name_suggests_the_closest_and_lists_choices(tmp_path, text, key, wrong, right):
    path = _write(tmp_path / "c.yaml", text)

    message = _error(path)

    assert message.startswith(f"{path}:{_line_of(text, wrong.split(chr(39))[1])}:")
    assert f"{key}: {wrong}" in message
    assert f"did you mean '{right}'" in message
    assert "choose from" in message


def test_unknown_keras_layer_suggests_the_closest(tmp_path):
    text = "name: t\ndata: {source: digits}\nmodel:\n  type: sequential\n  layers:\n    - Dense: {units: 3}\n" \
           "    - Dens: {units: 3}\n"
    path = _write(tmp_path / "c.yaml", text)

    message = _error(path)

    assert message.startswith(f"{path}:")
    assert "model.layers" in message and "unknown Keras layer 'Dens'" in message
    assert "did you mean 'Dense'" in message


def test_a_layer_item_with_two_layers_is_refused(tmp_path):
    path = _write(tmp_path / "c.yaml", "name: t\ndata: {source: digits}\nmodel:\n  type: sequential\n  layers:\n"
                                      "    - Dense: {units: 3}\n      Dropout: {rate: 0.1}\n")

    assert "one-key map" in _error(path)


def test_names_with_the_wrong_case_are_suggested_in_the_right_case(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID.replace("digits", "Digits"))

    assert "did you mean 'digits'" in _error(path)


def test_optimizer_names_are_case_insensitive(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "optimizer: {name: SGD}\n")

    assert load_config(path).optimizer.name == "sgd"



def test_unknown_preprocess_step_suggests_the_closest(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "preprocess:\n  - rescal: {scale: 2}\n")

    message = _error(path)

    assert "preprocess.0" in message
    assert "did you mean 'rescale'" in message



def test_model_without_type_asks_for_a_type_key(tmp_path):
    path = _write(tmp_path / "c.yaml", "name: t\ndata: {source: digits}\nmodel: {hidden_units: [8]}\n")

    message = _error(path)

    assert f"{path}:3:1: model:" in message
    assert "'type'" in message and "type_of" not in message


# --------------------------------------------------------------------------- YAML itself


def test_duplicate_key_names_the_lines_of_both(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "name: u\n")

    message = _error(path)

    assert message.startswith(f"{path}:6:1: duplicate key 'name'")
    assert "line 1" in message


def test_duplicate_key_inside_a_flow_mapping(tmp_path):
    path = _write(tmp_path / "c.yaml", "name: t\ndata: {source: digits, source: iris}\nmodel: {type: mlp}\n")

    message = _error(path)

    assert message.startswith(f"{path}:2:24: duplicate key 'source'")
    assert "line 2" in message



def test_yaml_merge_key_lets_the_explicit_key_override(tmp_path):
    path = _write(tmp_path / "c.yaml", """\
        name: t
        data: {source: digits}
        model:
          type: sequential
          layers:
            - Dense: &hidden {units: 8, activation: relu}
            - Dense: {<<: *hidden, units: 4}
        """)

    cfg = load_config(path)

    assert cfg.model.layers[1] == {"Dense": {"units": 4, "activation": "relu"}}


def test_tab_indentation_is_explained(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(VALID + "train:\n\tepochs: 3\n")

    message = _error(path)

    assert message.startswith(f"{path}:7:")
    assert "tab" in message and "spaces" in message


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = _write(tmp_path / "c.yaml", "name: t\ndata: {source: digits\nmodel: {type: mlp}\n")

    message = _error(path)

    assert message.startswith(f"{path}:") and "invalid YAML" in message


@pytest.mark.parametrize(
    "snippet",
    [
        "seed: !!python/object/apply:os.system 'touch {marker}'\n",
        "seed: !!python/object/apply:os.system ['touch {marker}']\n",
        "seed: !!python/object/apply:os.system\n  args: ['touch {marker}']\n",
    ],
    ids=["scalar", "sequence", "mapping"],
)
def test_python_tags_are_never_executed(tmp_path, snippet):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "c.yaml", VALID + snippet.format(marker=marker))

    with pytest.raises(ConfigError):
        load_config(path)

    assert not marker.exists()


def test_python_tag_on_a_scalar_is_refused_by_name(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "seed: !!python/object/apply:os.system 'echo hi'\n")

    message = _error(path)

    assert message.startswith(f"{path}:6:")
    assert "python/object/apply:os.system" in message and "not allowed" in message



@pytest.mark.parametrize(
    "snippet",
    [
        "metrics: !!python/object/apply:os.system [accuracy]\n",
        "train: !!python/object/new:os.system {epochs: 3}\n",
    ],
    ids=["sequence", "mapping"],
)
def test_python_tag_on_a_collection_is_refused(tmp_path, snippet):
    path = _write(tmp_path / "c.yaml", VALID + snippet)

    message = _error(path)

    assert "not allowed" in message


@pytest.mark.parametrize("text", ["", "# nothing yet\n"], ids=["empty", "comment_only"])
def test_empty_file_says_so(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)

    message = _error(path)

    assert message.startswith(str(path)) and "empty" in message


def test_top_level_list_is_refused(tmp_path):
    path = _write(tmp_path / "c.yaml", "- data\n- model\n")

    message = _error(path)

    assert message.startswith(f"{path}:1:1:")
    assert "mapping" in message and "list" in message


def test_parse_config_text_refuses_a_top_level_scalar():
    with pytest.raises(ConfigError, match="<inline>: the top level must be a mapping"):
        parse_config_text("just text", "<inline>")


def test_missing_config_file(tmp_path):
    path = tmp_path / "absent.yaml"

    message = _error(path)

    assert str(path) in message and "not found" in message


def test_directory_instead_of_a_file(tmp_path):
    assert "directory" in _error(tmp_path)


# --------------------------------------------------------------------------- extends


def test_extends_is_relative_to_the_including_file_and_child_wins_key_by_key(tmp_path, monkeypatch):
    _write(tmp_path / "shared" / "base.yaml", """\
        name: base
        seed: 1
        data: {source: digits, batch_size: 16, test_split: 0.3}
        model: {type: mlp, hidden_units: [8, 8]}
        """)
    child = _write(tmp_path / "exp" / "child.yaml", """\
        extends: ../shared/base.yaml
        data: {batch_size: 64}
        model: {hidden_units: [4]}
        """)
    monkeypatch.chdir(tmp_path / "shared")  # a cwd-relative lookup would miss ../shared/base.yaml

    cfg = load_config(child)

    assert cfg.data.batch_size == 64  # child
    assert cfg.data.test_split == 0.3 and cfg.data.source == "digits"  # base, same section
    assert cfg.seed == 1
    assert cfg.model.hidden_units == [4]  # lists are replaced, not concatenated


def test_nested_extends_and_later_bases_win(tmp_path):
    _write(tmp_path / "a.yaml", "name: a\nseed: 1\ndata: {source: digits, test_split: 0.3}\nmodel: {type: mlp}\n")
    _write(tmp_path / "b.yaml", "seed: 2\ndata: {batch_size: 8}\n")
    _write(tmp_path / "child.yaml", "extends: [a.yaml, b.yaml]\ndata: {validation_split: 0.1}\n")
    grand = _write(tmp_path / "grand.yaml", "extends: child.yaml\nname: grand\n")

    cfg = load_config(grand)

    assert cfg.name == "grand"
    assert cfg.seed == 2  # b.yaml comes after a.yaml
    assert (cfg.data.test_split, cfg.data.batch_size, cfg.data.validation_split) == (0.3, 8, 0.1)


def test_error_in_a_base_names_the_base_file_and_its_line(tmp_path):
    base = _write(tmp_path / "base.yaml", VALID + "train:\n  epochz: 3\n")
    child = _write(tmp_path / "child.yaml", "# child\nextends: base.yaml\nseed: 3\n")

    message = _error(child)

    assert message.startswith(f"{base}:7:3: train.epochz:")
    assert "did you mean 'epochs'" in message


def test_extends_cycle_is_detected(tmp_path):
    a = _write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\n")

    message = _error(a)

    assert "cycle" in message
    assert "a.yaml" in message and "b.yaml" in message


def test_a_file_extending_itself_is_a_cycle(tmp_path):
    path = _write(tmp_path / "self.yaml", "extends: self.yaml\n")

    assert "cycle" in _error(path)


def test_missing_base_names_the_extends_line_and_the_path(tmp_path):
    path = _write(tmp_path / "c.yaml", "name: t\nextends: nowhere.yaml\n")

    message = _error(path)

    assert message.startswith(f"{path}:2:1:")
    assert "not found" in message and "nowhere.yaml" in message


def test_extends_must_name_files(tmp_path):
    path = _write(tmp_path / "c.yaml", "extends: [1, 2]\n")

    assert "extends must be a file name" in _error(path)


def test_name_defaults_to_the_file_name(tmp_path):
    path = _write(tmp_path / "my-run.yaml", VALID.replace("name: t\n", ""))

    assert load_config(path).name == "my-run"


def test_name_with_parent_directory_parts_is_refused(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID.replace("name: t", "name: ../escape"))

    message = _error(path)

    assert message.startswith(f"{path}:1:1: name:")
    assert "../escape" in message


def test_deep_merge_merges_sections_replaces_values_and_leaves_inputs_alone():
    base = {"data": {"source": "digits", "batch_size": 16}, "metrics": ["accuracy"]}
    top = {"data": {"batch_size": 64}, "metrics": ["f1"]}

    merged = deep_merge(base, top)

    assert merged == {"data": {"source": "digits", "batch_size": 64}, "metrics": ["f1"]}
    assert base == {"data": {"source": "digits", "batch_size": 16}, "metrics": ["accuracy"]}
    merged["metrics"].append("auc")
    assert top["metrics"] == ["f1"]  # the result shares nothing with its inputs


# --------------------------------------------------------------------------- data.path


def test_relative_data_path_resolves_against_the_config_file(tmp_path, monkeypatch):
    path = _write(tmp_path / "cfg" / "c.yaml",
                  "name: t\ndata: {source: csv, path: data/train.csv}\nmodel: {type: mlp}\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    cfg = load_config(path)

    assert Path(cfg.data.path).is_absolute()
    assert Path(cfg.data.path) == (tmp_path / "cfg" / "data" / "train.csv").resolve()


def test_relative_data_path_in_a_base_resolves_against_the_base(tmp_path):
    _write(tmp_path / "base" / "b.yaml", "name: t\ndata: {source: csv, path: train.csv}\nmodel: {type: mlp}\n")
    child = _write(tmp_path / "runs" / "c.yaml", "extends: ../base/b.yaml\nseed: 1\n")

    assert Path(load_config(child).data.path) == (tmp_path / "base" / "train.csv").resolve()


def test_absolute_data_path_is_kept(tmp_path):
    target = (tmp_path / "d.csv").resolve()
    path = _write(tmp_path / "c.yaml", f"name: t\ndata: {{source: csv, path: '{target}'}}\nmodel: {{type: mlp}}\n")

    assert load_config(path).data.path == str(target)


def test_data_path_from_set_resolves_against_the_working_directory(tmp_path, monkeypatch):
    path = _write(tmp_path / "cfg" / "c.yaml", "name: t\ndata: {source: csv, path: in_file.csv}\nmodel: {type: mlp}\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    cfg = load_config(path, ["data.path=rel.csv"])

    assert Path(cfg.data.path) == (work / "rel.csv").resolve()


# --------------------------------------------------------------------------- --set overrides


def test_override_values_are_parsed_as_yaml():
    data: dict = {"train": {"epochs": 10}}

    apply_override(data, Marks(), "train.epochs=3")
    apply_override(data, Marks(), "metrics=[accuracy, f1]")
    apply_override(data, Marks(), "train.jit_compile=false")
    apply_override(data, Marks(), "data.label=target")

    assert data["train"]["epochs"] == 3 and type(data["train"]["epochs"]) is int
    assert data["metrics"] == ["accuracy", "f1"]
    assert data["train"]["jit_compile"] is False
    assert data["data"] == {"label": "target"}  # a missing section is created on the way


def test_overrides_reach_the_config_and_later_ones_win(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID)

    cfg = load_config(path, ["train.epochs=3", "metrics=[accuracy, f1]", "seed=5", "seed=6"])

    assert cfg.train.epochs == 3
    assert [m.name for m in cfg.metrics] == ["accuracy", "f1"]
    assert cfg.seed == 6


@pytest.mark.parametrize("index", ["0", "-1"])
def test_override_indexes_into_lists(index):
    path = CONFIGS / "digits_mlp.yaml"

    cfg = load_config(path, [f"preprocess.{index}.rescale.scale=0.5"])

    assert len(cfg.preprocess) == 1
    assert cfg.preprocess[0].params.scale == 0.5


def test_override_index_out_of_range_names_the_list(tmp_path):
    message = _error(CONFIGS / "digits_mlp.yaml", ["preprocess.3.rescale.scale=0.5"])

    assert message.startswith("--set preprocess.3.rescale.scale=0.5:")
    assert "'preprocess' is a list of 1 items" in message


def test_unknown_key_via_set_names_the_override_and_suggests(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID)

    message = _error(path, ["train.epoch=3"])

    assert message.startswith("--set train.epoch=3: train.epoch: unknown key 'epoch'")
    assert "did you mean 'epochs'" in message
    assert str(path) not in message


def test_bad_value_via_set_names_the_override_not_the_file(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "train:\n  epochs: 5\n")

    message = _error(path, ["train.epochs=0"])

    assert message.startswith("--set train.epochs=0: train.epochs:")


@pytest.mark.parametrize("override", ["foo", "=3", " =3"])
def test_malformed_override_shows_the_expected_form(tmp_path, override):
    path = _write(tmp_path / "c.yaml", VALID)

    message = _error(path, [override])

    assert message.startswith(f"--set {override}:")
    assert "KEY=VALUE" in message


def test_override_with_invalid_yaml_value(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID)

    message = _error(path, ["metrics=[accuracy"])

    assert message.startswith("--set metrics=[accuracy:") and "not valid YAML" in message



def test_override_into_a_missing_list_names_the_override(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID)

    message = _error(path, ["preprocess.0.rescale.scale=0.5"])

    assert "--set preprocess.0.rescale.scale=0.5" in message


# --------------------------------------------------------------------------- cross-field and section rules


def test_early_stopping_on_val_metric_needs_a_validation_split(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "train:\n  early_stopping: {monitor: val_accuracy}\n")

    message = _error(path)

    assert message.startswith(f"{path}:")
    assert "train.early_stopping.monitor" in message and "val_accuracy" in message
    assert "data.validation_split" in message


def test_early_stopping_on_val_metric_with_a_validation_split_is_fine(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "train:\n  early_stopping: {monitor: val_loss}\n")

    cfg = load_config(path, ["data.validation_split=0.2"])

    assert cfg.train.early_stopping.monitor == "val_loss"


def test_early_stopping_on_a_training_quantity_needs_no_validation_split(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "train:\n  early_stopping: {monitor: loss}\n")

    assert load_config(path).train.early_stopping.patience == 5


def test_cosine_schedule_with_warmup(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "optimizer:\n  learning_rate: {schedule: cosine, initial: 0.01, "
                                               "warmup_steps: 20}\n")

    rate = load_config(path).optimizer.learning_rate

    assert (rate.schedule, rate.initial, rate.warmup_steps, rate.decay_steps) == ("cosine", 0.01, 20, None)


def test_exponential_schedule(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "optimizer:\n  learning_rate: {schedule: exponential, initial: 0.1, "
                                               "decay_steps: 100, decay_rate: 0.5}\n")

    assert load_config(path).optimizer.learning_rate.decay_rate == 0.5


@pytest.mark.parametrize(
    "rate, fragment",
    [
        ("{schedule: piecewise, boundaries: [10, 20], values: [0.1, 0.01]}", "values needs 3 entries for 2 boundaries"),
        ("{schedule: piecewise, boundaries: [20, 10], values: [0.1, 0.01, 0.001]}", "boundaries must increase"),
        ("{schedule: linear, initial: 0.1}", "learning_rate is a number or a map with schedule"),
        ("fast", "learning_rate is a number or a map with schedule"),
    ],
    ids=["piecewise_count", "piecewise_order", "unknown_schedule", "not_a_schedule"],
)
def test_bad_learning_rate_is_refused_at_its_line(tmp_path, rate, fragment):
    text = VALID + f"optimizer:\n  name: adam\n  learning_rate: {rate}\n"
    path = _write(tmp_path / "c.yaml", text)

    message = _error(path)

    assert message.startswith(f"{path}:{_line_of(text, 'learning_rate')}:")
    assert "optimizer.learning_rate" in message and fragment in message


def test_optimizer_extra_arguments_are_kept(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "optimizer: {name: sgd, momentum: 0.9, nesterov: true}\n")

    assert load_config(path).optimizer.args == {"momentum": 0.9, "nesterov": True}


def test_misspelt_optimizer_field_is_refused(tmp_path):
    text = VALID + "optimizer:\n  name: sgd\n  learnin_rate: 0.1\n"
    path = _write(tmp_path / "c.yaml", text)

    message = _error(path)

    assert message.startswith(f"{path}:6:")
    assert "unknown key 'learnin_rate'" in message and "did you mean 'learning_rate'" in message


def test_loss_and_metric_arguments(tmp_path):
    path = _write(tmp_path / "c.yaml", VALID + "loss: {huber: {delta: 2.0}}\nmetrics: [{top_k: {k: 3}}, accuracy]\n")

    cfg = load_config(path)

    assert (cfg.loss.name, cfg.loss.args) == ("huber", {"delta": 2.0})
    assert [(m.name, m.args) for m in cfg.metrics] == [("top_k", {"k": 3}), ("accuracy", {})]


def test_tfrecord_shard_paths_are_relative_to_the_config_file_and_urls_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the working directory is not where the config is
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "c.yaml").write_text(
        "data:\n  source: tfrecord\n  label: y\n  features: {x: {dtype: float32, shape: [4]}, y: int64}\n"
        "  files:\n    train: shards/train-*.tfrecord\n    val: [shards/val-0.tfrecord, gs://bucket/val-1.tfrecord]\n"
        "model: {type: mlp}\n")

    cfg = load_config(folder / "c.yaml")

    assert cfg.data.files.train == str(folder / "shards" / "train-*.tfrecord")
    assert cfg.data.files.val == [str(folder / "shards" / "val-0.tfrecord"), "gs://bucket/val-1.tfrecord"]


@pytest.mark.parametrize("written", ["off", "false", "no", "'off'"])
def test_mixed_precision_off_may_be_written_bare(tmp_path, written):
    """YAML reads a bare `off` as false; the key means the word, in a file and in --set alike."""
    path = _write(tmp_path / "c.yaml", VALID + f"train:\n  mixed_precision: {written}\n")
    assert load_config(path).train.mixed_precision == "off"
    assert load_config(_write(tmp_path / "d.yaml", VALID), [f"train.mixed_precision={written}"]
                       ).train.mixed_precision == "off"
    assert "found True" in _error(path, ["train.mixed_precision=on"])
