"""EncoderState: the typed state a run learns from its data, and data_info.json files of earlier versions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fmtrain.config.schema import data_config
from fmtrain.data import DataInfo, EncoderState, build
from fmtrain.errors import RunDirError

# data_info.json as fmtrain wrote it before EncoderState and task_reason existed (csv features).
OLD_CSV_INFO = """{"schema_version": 1, "source": "csv /data/pets.csv", "task": "classification", "num_classes": 3,
 "class_names": ["bird", "cat", "dog"], "feature_names": ["size", "color=blue", "color=green", "color=red", "legs"],
 "input_shape": [5], "encoders": {"task": "classification", "num_classes": 3, "label_classes": ["bird", "cat", "dog"],
 "columns": ["size", "color", "legs"], "categories": {"color": ["blue", "green", "red"]}}, "vocab_sizes": null,
 "label_shape": []}"""
# ... and for interactions (id vocabularies).
OLD_INTERACTIONS_ENCODERS = {"task": "regression",
                             "vocabularies": {"user": [["u0", "u1", "u2"]], "item": [["i0", "i1", "i2", "i3"]]}}


def _pets(path, rows=12):
    colors, species = ["red", "blue", "green"], ["cat", "dog", "bird"]
    path.write_text("size,color,legs,species\n"
                    + "".join(f"{i},{colors[i % 3]},{i % 4},{species[i % 3]}\n" for i in range(rows)))
    return path


def test_an_old_data_info_json_loads_as_typed_state_and_encodes_new_data_as_trained(tmp_path):
    info = DataInfo.from_dict(json.loads(OLD_CSV_INFO))
    state = info.encoders

    assert isinstance(state, EncoderState)
    assert state.columns == ["size", "color", "legs"] and state.categories == {"color": ["blue", "green", "red"]}
    assert state.label_classes == ["bird", "cat", "dog"] and state.vocabularies is None
    assert info.task_reason is None
    # The trained column order and categories win over the new file's (which lacks 'green' and reorders columns).
    path = tmp_path / "new.csv"
    path.write_text("legs,color,size,species\n4,red,1,dog\n2,blue,3,bird\n")
    data = build(data_config(source="csv", path=str(path), test_split=0), seed=0, encoders=state)
    np.testing.assert_array_equal(data.train.x, [[1, 0, 0, 1, 4], [3, 1, 0, 0, 2]])
    np.testing.assert_array_equal(data.train.y, [2, 0])


def test_the_saved_json_format_is_the_old_one_plus_task_reason(tmp_path):
    info = build(data_config(source="csv", path=str(_pets(tmp_path / "pets.csv"))), seed=0).info

    saved = json.loads(json.dumps(info.to_dict()))

    assert saved["encoders"] == json.loads(OLD_CSV_INFO)["encoders"]  # only the keys that are set, as before
    assert set(saved) == set(json.loads(OLD_CSV_INFO)) - {"schema_version"} | {"task_reason"}
    assert DataInfo.from_dict(saved) == info


@pytest.mark.parametrize("given", ["state", "json"])
def test_build_takes_the_state_back_typed_or_as_json(tmp_path, given):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\nu1,i9,4\nu0,i1,3\nu7,i2,1\n")
    encoders = EncoderState.from_dict(OLD_INTERACTIONS_ENCODERS) if given == "state" else OLD_INTERACTIONS_ENCODERS

    data = build(data_config(source="interactions", path=str(path), test_split=0), seed=0, encoders=encoders)

    # u1 → 2, u0 → 1, u7 unseen → 0; i9 unseen → 0, i1 → 2, i2 → 3: the saved vocabularies, not refitted.
    np.testing.assert_array_equal(data.train.x["user"], [2, 1, 0])
    np.testing.assert_array_equal(data.train.x["item"], [0, 2, 3])
    assert data.info.encoders.vocabularies == OLD_INTERACTIONS_ENCODERS["vocabularies"]


def test_an_unknown_key_is_an_error_naming_it_not_a_silent_default(tmp_path):
    with pytest.raises(RunDirError, match=r"encoders has an unknown key 'vocabulary' \(did you mean 'vocabularies'\?\)"
                       r"; the keys fmtrain reads are 'categories', 'columns', "):
        EncoderState.from_dict({"task": "regression", "vocabulary": {}})
    old = json.loads(OLD_CSV_INFO)
    old["encoders"]["column"] = old["encoders"].pop("columns")
    with pytest.raises(RunDirError, match=r"unknown key 'column' \(did you mean 'columns'\?\)"):
        DataInfo.from_dict(old)
    with pytest.raises(RunDirError, match=r"unknown key 'categorie'"):
        build(data_config(source="csv", path=str(_pets(tmp_path / "pets.csv"))), seed=0,
              encoders={"categorie": {"color": ["red"]}})


def test_missing_keys_default_to_unset_and_a_bad_task_is_refused():
    assert EncoderState.from_dict({}) == EncoderState()
    assert EncoderState.from_dict({"task": "regression"}).to_dict() == {"task": "regression"}
    with pytest.raises(RunDirError, match=r"encoders.task is 'clasification'"):
        EncoderState.from_dict({"task": "clasification"})
