"""Property: whatever YAML arrives, validation either succeeds or raises fmtrain's own error."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmtrain.config import parse_config_text
from fmtrain.errors import FmtrainError

KEYS = ["name", "seed", "data", "source", "path", "model", "type", "layers", "Dense", "units", "optimizer",
        "learning_rate", "schedule", "loss", "metrics", "train", "epochs", "preprocess", "rescale", "scale",
        "early_stopping", "checkpoint", "batch_size", "validation_split", "hidden_units", "extends", "<<"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["mlp", "digits", "adam", "cosine", "auto", "accuracy"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)), max_leaves=25)
VALID = {"name": "x", "data": {"source": "digits"}, "model": {"type": "mlp"}, "train": {"epochs": 1}}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_random_documents_raise_only_fmtrain_errors(document):
    _validate(yaml.safe_dump(document))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["data", "model", "train", "optimizer", "loss", "metrics", "preprocess", "seed"]), values)
def test_mutating_one_section_of_a_valid_config_raises_only_fmtrain_errors(section, value):
    _validate(yaml.safe_dump({**VALID, section: value}))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_fmtrain_errors(text):
    _validate(text)


def _validate(text: str) -> None:
    try:
        parse_config_text(text, "fuzz.yaml")
    except FmtrainError as exc:
        assert str(exc).strip(), "an error without a message"
