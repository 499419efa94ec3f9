"""DataInfo.task_reason: the inferred task is said, with why, and saved with the run."""

from __future__ import annotations

import json

import pytest

from fmtrain.config.schema import data_config
from fmtrain.data import DataInfo, build


def _csv(path, labels, header="class"):
    path.write_text(f"x,{header}\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
    return str(path)


def test_float_labels_with_few_values_are_regression_and_the_reason_suggests_classification(tmp_path):
    path = _csv(tmp_path / "t.csv", [f"{i % 3}.0" for i in range(90)])

    info = build(data_config(source="csv", path=path), seed=0).info

    assert info.task == "regression"
    assert info.task_reason == ("label column 'class' is float with 3 distinct values (0.0, 1.0, 2.0), so the task "
                                "is regression; set data.task: classification if they are classes")


def test_setting_data_task_makes_the_same_labels_classes_and_says_so(tmp_path):
    path = _csv(tmp_path / "t.csv", [f"{i % 3}.0" for i in range(90)])

    info = build(data_config(source="csv", path=path, task="classification"), seed=0).info

    assert (info.task, info.num_classes) == ("classification", 3)
    assert info.task_reason == "set in the config (data.task: classification)"


@pytest.mark.parametrize(("labels", "task", "reason"), [
    (["cat", "dog", "bird"] * 10, "classification", "label column 'class' holds strings, taken as 3 class names"),
    ([0, 1, 2] * 10, "classification", "label column 'class' holds integers, taken as class ids 0..2; "
                                       "set data.task: regression to predict them as numbers"),
    ([f"{i * 0.37:.2f}" for i in range(30)], "regression",
     "label column 'class' holds float numbers (30 distinct values), so the task is regression"),
    # Three values in 30 rows are not "few" (the rule asks for fewer than 5% of the rows): no suggestion.
    ([f"{i % 3}.0" for i in range(30)], "regression",
     "label column 'class' holds float numbers (3 distinct values), so the task is regression"),
])
def test_the_reason_names_what_the_labels_hold(tmp_path, labels, task, reason):
    info = build(data_config(source="csv", path=_csv(tmp_path / "t.csv", labels)), seed=0).info

    assert (info.task, info.task_reason) == (task, reason)


@pytest.mark.parametrize(("source", "task"), [("iris", "classification"), ("wine", "classification"),
                                              ("diabetes", "regression")])
def test_a_bundled_set_says_its_task_is_fixed(source, task):
    info = build(data_config(source=source), seed=0).info

    assert (info.task, info.task_reason) == (task, f"source '{source}' is a {task} data set")


def test_generated_and_interaction_sources_say_why(tmp_path):
    sentiment = build(data_config(source="synthetic_sentiment", options={"n": 40}), seed=0).info
    ratings = tmp_path / "r.csv"
    ratings.write_text("user,item,stars\nu1,i1,4\nu2,i1,3\nu1,i2,5\n")
    interactions = build(data_config(source="interactions", path=str(ratings), label="stars", test_split=0),
                         seed=0).info

    assert sentiment.task_reason == "source 'synthetic_sentiment' is a classification data set"
    assert interactions.task == "regression"
    assert interactions.task_reason.startswith("interactions predict the rating column 'stars' as a number")


def test_the_reason_round_trips_through_data_info_json_and_old_files_have_none(tmp_path):
    info = build(data_config(source="csv", path=_csv(tmp_path / "t.csv", [f"{i % 3}.0" for i in range(90)])),
                 seed=0).info

    saved = json.loads(json.dumps(info.to_dict()))

    assert saved["task_reason"] == info.task_reason
    assert DataInfo.from_dict(saved) == info
    del saved["task_reason"]  # a data_info.json written before the field existed
    assert DataInfo.from_dict(saved).task_reason is None


def test_rebuilding_with_a_runs_state_keeps_its_task_and_says_where_it_came_from(tmp_path):
    path = _csv(tmp_path / "t.csv", [f"{i % 3}.0" for i in range(90)])
    trained = build(data_config(source="csv", path=path, task="classification"), seed=0).info

    again = build(data_config(source="csv", path=path), seed=0, encoders=trained.encoders).info

    assert again.task == "classification"
    assert again.task_reason == "kept from the trained run (data_info.json: encoders.task)"
