"""Regenerate fmtrain/config/keras_names.py from the installed Keras (run: make keras-names).

Besides the names, it records the arguments each optimizer, loss and metric takes and the kind of
value each argument holds, read from the Keras signatures, so `fmtrain validate` can type
``optimizer.weight_decay`` or ``loss: {huber: {delta: 2}}`` without importing Keras.
"""

import inspect
import sys

import keras
from keras.src.losses import ALL_OBJECTS_DICT as LOSS_OBJECTS
from keras.src.metrics import ALL_OBJECTS_DICT as METRIC_OBJECTS

HEADER = '''"""Names Keras resolves, and the arguments it takes, kept here so `fmtrain validate` can check them
without importing Keras.

Generated from Keras {version} by `make keras-names` (scripts/gen_keras_names.py); `tests/test_keras_names.py`
fails when the installed Keras disagrees, which is the cue to regenerate.

An argument's kind is ``float`` (any number), ``int`` (a whole number), ``bool``, ``str``, ``list``, ``None``
or ``any``, or several joined by ``|``; ``*_REQUIRED_ARGS`` lists the arguments without a default.
"""

from __future__ import annotations
'''

WRAPPERS = ("Optimizer", "LossScaleOptimizer", "MultiOptimizer")
GENERIC_METRICS = ("metric", "mean_metric_wrapper", "mean", "sum")

# Arguments a config never passes: fmtrain sets them itself (learning_rate and clipnorm are
# OptimizerConfig fields, the optimizer's `name` key picks the class, metrics are named by fmtrain).
SET_BY_FMTRAIN = {
    "optimizer": {"learning_rate", "clipnorm", "name"},
    "loss": {"y_true", "y_pred"},
    "metric": {"name"},
}

# Kinds the Keras defaults do not tell (a None default, no default, or a float written as an int),
# from the Keras docstrings. An undocumented one is reported when generating and accepts any value.
DOCUMENTED_KINDS = {
    "weight_decay": "float", "clipvalue": "float", "global_clipnorm": "float", "loss_scale_factor": "float",
    "ema_overwrite_frequency": "int", "gradient_accumulation_steps": "int", "exclude_layers": "list",
    "adam_lr_ratio": "float", "label_smoothing": "float", "gamma": "float", "margin": "float",
    "axis": "int|list", "ignore_class": "int", "ref_labels": "any", "ref_embeddings": "any",
    "dtype": "str", "thresholds": "float|list", "threshold": "float", "top_k": "int", "class_id": "int",
    "num_labels": "int", "label_weights": "list", "average": "str", "num_classes": "int",
    "target_class_ids": "list", "recall": "float", "precision": "float", "specificity": "float",
    "sensitivity": "float",
}


def public_classes(module, base) -> list[str]:
    return sorted(
        name for name in dir(module)
        if not name.startswith("_")
        and inspect.isclass(getattr(module, name))
        and issubclass(getattr(module, name), base)
    )


def optimizer_classes() -> dict[str, type]:
    """keras.optimizers classes by lower-case name (what fmtrain.optim.optimizer_class_named resolves)."""
    names = public_classes(keras.optimizers, keras.optimizers.Optimizer)
    return {name.lower(): getattr(keras.optimizers, name) for name in names if name not in WRAPPERS}


def loss_functions() -> dict[str, object]:
    """What keras.losses.get returns for each lower-case name (a function; fmtrain calls it with the args)."""
    return {name: keras.losses.get(name) for name in sorted(LOSS_OBJECTS) if name[0].islower()}


def metric_classes() -> dict[str, type]:
    """The class behind each lower-case keras.metrics name (fmtrain.metrics.keras_metric_class)."""
    return {name: METRIC_OBJECTS[name] for name in sorted(METRIC_OBJECTS)
            if name[0].islower() and name not in GENERIC_METRICS}


def kind_of(owner: str, parameter: inspect.Parameter) -> str:
    """The kind of value ``parameter`` takes, from its default or, where that says nothing, its docs."""
    default, documented = parameter.default, DOCUMENTED_KINDS.get(parameter.name)
    if default is inspect.Parameter.empty or default is None:
        if documented is None:
            print(f"note: {owner}'s {parameter.name} has no documented kind; any value passes", file=sys.stderr)
            return "any"
        return documented if default is inspect.Parameter.empty or documented == "any" else f"{documented}|None"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "float" if documented == "float" else "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, (tuple, list)):
        return "list"
    return "any"


def arguments(family: str, owner: str, fn) -> tuple[dict[str, str], tuple[str, ...]]:
    """``({argument: kind}, required arguments)`` a config may pass to ``fn``."""
    kinds, required = {}, []
    for name, parameter in inspect.signature(fn).parameters.items():
        if name == "self" or name in SET_BY_FMTRAIN[family]:
            continue
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        kinds[name] = kind_of(owner, parameter)
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    return kinds, tuple(required)


def tables() -> dict[str, object]:
    """Every table keras_names.py holds, by its name there."""
    activations = sorted(
        name for name in dir(keras.activations)
        if not name.startswith("_") and callable(getattr(keras.activations, name))
        and name not in ("get", "serialize", "deserialize")
    )
    families = {
        "optimizer": {name: cls.__init__ for name, cls in optimizer_classes().items()},
        "loss": loss_functions(),
        "metric": {name: cls.__init__ for name, cls in metric_classes().items()},
    }
    out: dict[str, object] = {
        "LAYERS": frozenset(public_classes(keras.layers, keras.layers.Layer)),
        "OPTIMIZERS": frozenset(families["optimizer"]),
        "LOSSES": frozenset(families["loss"]),
        "METRICS": frozenset(families["metric"]),
        "ACTIVATIONS": frozenset(activations),
    }
    for family, functions in families.items():
        found = {name: arguments(family, name, fn) for name, fn in sorted(functions.items())}
        out[f"{family.upper()}_ARGS"] = {name: kinds for name, (kinds, _) in found.items()}
        out[f"{family.upper()}_REQUIRED_ARGS"] = {name: required for name, (_, required) in found.items() if required}
    return out


DOCS = {
    "LAYERS": "keras.layers classes, as written in `model.layers`",
    "OPTIMIZERS": "keras.optimizers.get names (lower case)",
    "LOSSES": "keras.losses.get names",
    "METRICS": "keras.metrics.get names",
    "ACTIVATIONS": "keras.activations.get names",
    "OPTIMIZER_ARGS": "optimizer name → {constructor argument: kind} (learning_rate and clipnorm are fields)",
    "LOSS_ARGS": "loss name → {argument of the loss function keras.losses.get returns: kind}",
    "METRIC_ARGS": "metric name → {constructor argument: kind} (fmtrain names the metric itself)",
    "OPTIMIZER_REQUIRED_ARGS": "optimizer name → arguments it cannot do without",
    "LOSS_REQUIRED_ARGS": "loss name → arguments it cannot do without",
    "METRIC_REQUIRED_ARGS": "metric name → arguments it cannot do without",
}


def _wrapped(items: list[str], indent: int) -> str:
    """``items`` joined by commas, as many to a line as fit in 116 columns, never split inside one."""
    lines = [" " * indent]
    for item in items:
        if lines[-1].strip() and len(lines[-1]) + len(item) + 2 > 116:
            lines[-1] = lines[-1].rstrip()
            lines.append(" " * indent)
        lines[-1] += item + ", "
    return "\n".join(lines).rstrip().removesuffix(",")


def literal(name: str, value: object) -> str:
    """``NAME = ...`` as Python source, one entry per line for the per-name tables."""
    head = f"# {DOCS[name]}\n"
    if isinstance(value, frozenset):
        return f"{head}{name} = frozenset(\n    {{\n{_wrapped([repr(i) for i in sorted(value)], 8)}\n    }}\n)\n"
    annotation = "dict[str, tuple[str, ...]]" if "REQUIRED" in name else "dict[str, dict[str, str]]"
    if not value:
        return f"{head}{name}: {annotation} = {{}}\n"
    lines = []
    for key, inner in value.items():
        line = f"    {key!r}: {inner!r},"
        if len(line) > 116:
            line = f"    {key!r}: {{\n{_wrapped([f'{k!r}: {v!r}' for k, v in inner.items()], 8)}\n    }},"
        lines.append(line)
    return f"{head}{name}: {annotation} = {{\n" + "\n".join(lines) + "\n}\n"


def main() -> None:
    parts = [HEADER.format(version=keras.__version__)]
    parts += [literal(name, value) for name, value in tables().items()]
    with open("fmtrain/config/keras_names.py", "w") as handle:
        handle.write("\n".join(parts).rstrip() + "\n")


if __name__ == "__main__":
    main()
