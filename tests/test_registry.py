"""Registries: components by name, and misses that list the choices and suggest the closest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import typing

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
    from fmtrain.components import METRICS, MODELS, SOURCES, STEPS

    assert {"sequential", "mlp", "custom"} <= set(MODELS.names())
    assert {"digits", "iris", "mnist", "csv", "npz"} <= set(SOURCES.names())
    assert {"rescale", "standardize", "reshape", "flatten", "one_hot"} <= set(STEPS.names())
    assert {"accuracy", "precision", "recall", "f1", "top_k", "auc", "rmse"} <= set(METRICS.names())
    for registry in (MODELS, SOURCES, STEPS, METRICS):
        assert all(entry.summary for entry in registry.entries()), registry.kind


def test_models_and_steps_carry_the_class_that_validates_their_options():
    from fmtrain.components import MODELS, STEPS
    from fmtrain.models.registry import ModelParams

    assert all(issubclass(entry.params, ModelParams) for entry in MODELS.entries())
    assert all(entry.params is not None for entry in STEPS.entries())


def test_every_source_carries_a_config_class_that_takes_its_own_name():
    from fmtrain.components import SOURCES
    from fmtrain.data.sources import SourceConfig

    for entry in SOURCES.entries():
        assert issubclass(entry.params, SourceConfig), entry.name
        # The schema routes data.source to this class; its own source field must accept the name.
        assert entry.name in typing.get_args(entry.params.model_fields["source"].annotation), entry.name


# The component families: the schema reaches them only through fmtrain.components.
IMPLEMENTATIONS = ("fmtrain.data", "fmtrain.models", "fmtrain.preprocess", "fmtrain.losses", "fmtrain.metrics")


def _imported_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return what it printed as JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_the_schema_reaches_implementations_only_through_the_components_index():
    found = _imported_after(f"""
        import json, sys
        sys.modules["fmtrain.components"] = None  # blocks the index
        try:
            import fmtrain.config.schema
            blocked = None
        except ImportError as err:
            blocked = err.name
        implementations = sorted(m for m in sys.modules if m.startswith({IMPLEMENTATIONS!r}))
        print(json.dumps({{"blocked": blocked, "implementations": implementations, "numpy": "numpy" in sys.modules}}))
    """)

    assert found == {"blocked": "fmtrain.components", "implementations": [], "numpy": False}


def test_components_import_neither_the_schema_nor_the_index():
    found = _imported_after(f"""
        import importlib, json, sys
        for name in {IMPLEMENTATIONS!r}:
            importlib.import_module(name)
        unwanted = {{"fmtrain.config.schema", "fmtrain.components", "tensorflow", "keras"}}
        print(json.dumps(sorted(unwanted & set(sys.modules))))
    """)

    assert found == []


def test_fmtrain_registry_miss_suggests_the_closest():
    from fmtrain.models import MODELS

    with pytest.raises(UnknownNameError, match=r"unknown model type 'mpl' \(did you mean 'mlp'\?\)"):
        MODELS.get("mpl")


def test_a_model_type_declares_vocab_sizes_exactly_when_its_builder_takes_them():
    import inspect

    from fmtrain.components import MODELS

    for entry in MODELS.entries():
        takes = "vocab_sizes" in inspect.signature(entry.build).parameters
        assert entry.params.uses_vocab_sizes == takes, entry.name


def test_model_types_declare_how_they_train_by_default():
    from fmtrain.components import MODELS

    two_tower = MODELS.get("two_tower").params
    assert (two_tower.default_loss, two_tower.required_losses, two_tower.default_metrics) == (
        "in_batch_softmax", ("in_batch_softmax",), ("recall_at_k",))
    mlp = MODELS.get("mlp").params
    assert (mlp.default_loss, mlp.required_losses, mlp.default_metrics) == ("auto", (), None)
