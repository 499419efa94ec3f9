"""Registries: components by name, and misses that list the choices and suggest the closest."""

from __future__ import annotations

import pytest

from fmtrain.registry import Registry, UnknownNameError, describe_choices, did_you_mean


@pytest.fixture
def widgets() -> Registry:
    registry: Registry = Registry("widget")

    @registry.register("mlp", params=dict)
    def build_mlp():
        """Multilayer perceptron.

        Longer text that is not part of the summary.
        """

    @registry.register("cnn")
    def build_cnn():
        pass

    return registry


def test_registered_entries_are_found_by_name(widgets):
    entry = widgets.get("mlp")

    assert entry.name == "mlp" and entry.params is dict
    assert entry.build.__name__ == "build_mlp"
    assert entry.summary == "Multilayer perceptron."
    assert widgets.get("cnn").summary == ""
    assert "mlp" in widgets and "rnn" not in widgets


def test_names_and_entries_are_sorted(widgets):
    assert widgets.names() == ["cnn", "mlp"]
    assert [e.name for e in widgets.entries()] == ["cnn", "mlp"]


def test_registering_a_name_twice_is_refused(widgets):
    with pytest.raises(ValueError, match="widget 'mlp' is registered twice"):
        widgets.register("mlp")(lambda: None)


def test_register_returns_the_function_unchanged():
    registry: Registry = Registry("thing")

    def build():
        return 42

    assert registry.register("x")(build) is build


def test_a_miss_names_the_kind_suggests_and_lists_the_choices(widgets):
    with pytest.raises(UnknownNameError) as info:
        widgets.get("mpl")

    message = str(info.value)
    assert message.startswith("unknown widget 'mpl'")
    assert "(did you mean 'mlp'?)" in message
    assert "choose from 'cnn', 'mlp'" in message
    assert (info.value.kind, info.value.name, info.value.choices) == ("widget", "mpl", ["cnn", "mlp"])


def test_a_miss_with_nothing_close_still_lists_the_choices(widgets):
    with pytest.raises(UnknownNameError) as info:
        widgets.get("transformer")

    assert "did you mean" not in str(info.value)
    assert "choose from 'cnn', 'mlp'" in str(info.value)


def test_a_miss_is_a_key_error_without_repr_quotes(widgets):
    with pytest.raises(KeyError) as info:
        widgets.get("rnn")

    assert str(info.value).startswith("unknown widget")  # a plain KeyError would print "'unknown …'"


@pytest.mark.parametrize(
    "word, choices, suggestion",
    [
        ("ADAM", ["adam", "sgd"], "adam"),
        ("dense", ["Dense", "Dropout"], "Dense"),
        ("Dens", ["Dense", "Dropout"], "Dense"),
        ("DIGTS", ["digits", "iris"], "digits"),
        ("acuracy", ["accuracy", "auc"], "accuracy"),
    ],
)
def test_did_you_mean_ignores_case_and_returns_the_registered_spelling(word, choices, suggestion):
    assert did_you_mean(word, choices) == f" (did you mean '{suggestion}'?)"


@pytest.mark.parametrize("word, choices", [("transformer", ["mlp", "cnn"]), ("x", []), ("zzz", ["adam"])])
def test_did_you_mean_is_empty_when_nothing_is_close(word, choices):
    assert did_you_mean(word, choices) == ""


def test_describe_choices_sorts_quotes_and_counts_the_rest():
    assert describe_choices(["b", "a", "c"]) == "'a', 'b', 'c'"
    assert describe_choices([f"n{i:02d}" for i in range(15)], limit=12).endswith("'n11' and 3 more")
    assert "more" not in describe_choices([f"n{i:02d}" for i in range(12)], limit=12)


# --------------------------------------------------------------------------- fmtrain's own registries


def test_fmtrain_registries_hold_the_documented_names():
    from fmtrain.data.sources import SOURCES
    from fmtrain.metrics import METRICS
    from fmtrain.models import MODELS
    from fmtrain.preprocess import STEPS

    assert {"sequential", "mlp", "custom"} <= set(MODELS.names())
    assert {"digits", "iris", "mnist", "csv", "npz"} <= set(SOURCES.names())
    assert {"rescale", "standardize", "reshape", "flatten", "one_hot"} <= set(STEPS.names())
    assert {"accuracy", "precision", "recall", "f1", "top_k", "auc", "rmse"} <= set(METRICS.names())
    for registry in (MODELS, SOURCES, STEPS, METRICS):
        assert all(entry.summary for entry in registry.entries()), registry.kind


def test_models_and_steps_carry_the_class_that_validates_their_options():
    from fmtrain.models import MODELS
    from fmtrain.preprocess import STEPS

    assert all(entry.params is not None for entry in MODELS.entries())
    assert all(entry.params is not None for entry in STEPS.entries())


def test_fmtrain_registry_miss_suggests_the_closest():
    from fmtrain.models import MODELS

    with pytest.raises(UnknownNameError, match=r"unknown model type 'mpl' \(did you mean 'mlp'\?\)"):
        MODELS.get("mpl")
