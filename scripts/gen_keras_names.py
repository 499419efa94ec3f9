"""Regenerate fmtrain/config/keras_names.py from the installed Keras (run: make keras-names)."""

import inspect
import textwrap

import keras
from keras.src.losses import ALL_OBJECTS_DICT as LOSS_OBJECTS
from keras.src.metrics import ALL_OBJECTS_DICT as METRIC_OBJECTS

HEADER = '''"""Names Keras resolves, kept here so `fmtrain validate` can check them without importing Keras.

Generated from Keras {version} by `make keras-names` (scripts/gen_keras_names.py); `tests/test_keras_names.py`
fails when the installed Keras disagrees, which is the cue to regenerate.
"""

from __future__ import annotations
'''


def public_classes(module, base) -> list[str]:
    return sorted(
        name for name in dir(module)
        if not name.startswith("_")
        and inspect.isclass(getattr(module, name))
        and issubclass(getattr(module, name), base)
    )


def frozenset_literal(name: str, items: list[str], doc: str) -> str:
    body = textwrap.fill(", ".join(repr(i) for i in items), 92, initial_indent="        ", subsequent_indent="        ")
    return f"# {doc}\n{name} = frozenset(\n    {{\n{body}\n    }}\n)\n"


def main() -> None:
    layers = public_classes(keras.layers, keras.layers.Layer)
    wrappers = ("Optimizer", "LossScaleOptimizer", "MultiOptimizer")
    optimizers = [o.lower() for o in public_classes(keras.optimizers, keras.optimizers.Optimizer) if o not in wrappers]
    losses = sorted(k for k in LOSS_OBJECTS if k[0].islower())
    generic = ("metric", "mean_metric_wrapper", "mean", "sum")
    metrics = sorted(k for k in METRIC_OBJECTS if k[0].islower() and k not in generic)
    activations = sorted(
        name for name in dir(keras.activations)
        if not name.startswith("_") and callable(getattr(keras.activations, name))
        and name not in ("get", "serialize", "deserialize")
    )
    parts = [
        HEADER.format(version=keras.__version__),
        frozenset_literal("LAYERS", layers, "keras.layers classes, as written in `model.layers`"),
        frozenset_literal("OPTIMIZERS", optimizers, "keras.optimizers.get names (lower case)"),
        frozenset_literal("LOSSES", losses, "keras.losses.get names"),
        frozenset_literal("METRICS", metrics, "keras.metrics.get names"),
        frozenset_literal("ACTIVATIONS", activations, "keras.activations.get names"),
    ]
    with open("fmtrain/config/keras_names.py", "w") as handle:
        handle.write("\n".join(parts).rstrip() + "\n")


if __name__ == "__main__":
    main()
