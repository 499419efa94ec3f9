"""Regenerate fmtrain/config/keras_names.py from the installed Keras (run: make keras-names)."""

import inspect
import textwrap

import keras


def public(mod, base):
    return sorted(n for n in dir(mod) if not n.startswith("_") and inspect.isclass(getattr(mod, n)) and issubclass(getattr(mod, n), base))
layers = public(keras.layers, keras.layers.Layer)
opts = [o.lower() for o in public(keras.optimizers, keras.optimizers.Optimizer) if o not in ("Optimizer","LossScaleOptimizer","MultiOptimizer")]
from keras.src.losses import ALL_OBJECTS_DICT as L
from keras.src.metrics import ALL_OBJECTS_DICT as M

losses = sorted(k for k in L if k[0].islower())
metrics = sorted(k for k in M if k[0].islower() and k not in ("metric","mean_metric_wrapper","mean","sum"))
acts = sorted(n for n in dir(keras.activations) if not n.startswith("_") and callable(getattr(keras.activations,n)) and n not in ("get","serialize","deserialize"))
def fmt(name, items, doc):
    body = textwrap.fill(", ".join(repr(i) for i in items), 92, initial_indent="    ", subsequent_indent="    ")
    return f"# {doc}\n{name} = frozenset(\n  {{\n{body}\n  }}\n)\n"
out = ['"""Names Keras resolves, kept here so `fmtrain validate` can check them without importing Keras.\n\nGenerated from Keras %s by `make keras-names` (scripts/gen_keras_names.py); `tests/test_keras_names.py`\nfails when the installed Keras disagrees, which is the cue to regenerate.\n"""\n\nfrom __future__ import annotations\n' % keras.__version__]
out.append(fmt("LAYERS", layers, "keras.layers classes, as written in `model.layers`"))
out.append(fmt("OPTIMIZERS", opts, "keras.optimizers.get names (lower case)"))
out.append(fmt("LOSSES", losses, "keras.losses.get names"))
out.append(fmt("METRICS", metrics, "keras.metrics.get names"))
out.append(fmt("ACTIVATIONS", acts, "keras.activations.get names"))
text = "\n\n".join(out).replace("\n  {\n", "\n    {\n").replace("\n  })\n", "\n    }\n)\n")
open("fmtrain/config/keras_names.py", "w").write(text.rstrip() + "\n")
