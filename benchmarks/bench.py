"""fmtrain's engine against plain and tuned ``model.fit``, side by side on this machine.

Every measurement runs in its own subprocess (clean memory, no shared XLA caches), the
methods interleaved case by case, and the table reports ratios measured in this run:

    python benchmarks/bench.py              # all cases (a few minutes on 2 cores)
    python benchmarks/bench.py --quick      # smaller data, for a sanity check
    python benchmarks/bench.py --only cnn --repeat 3 --no-end-to-end
    python benchmarks/bench.py --end-to-end-only --only cnn   # the whole-process CNN row alone

Throughput is training samples per second over the epochs after four warm-up epochs (tracing,
compilation and fmtrain's XLA-or-not measurement excluded for every method alike); accuracy is on
held-out data after the same number of epochs; memory is the subprocess's peak resident set. Each method runs
--repeat times per case, interleaved, and its fastest run is reported: on a shared machine
noise only ever slows a run down.

These rows are a long run's steady state: fmtrain's warm-up decides XLA-or-not as a run long
enough to afford the trial would (or as a later run reading that run's cached plan), with a
fresh plan cache per subprocess. A short run's trial budget may keep XLA untried; the
whole-process rows (``end to end``) show what a run of the shipped config actually pays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
METHODS = ("plain", "tuned", "fmtrain")
# Untimed epochs before timing, the same for every method: tracing and compilation for all,
# and fmtrain's XLA-or-not measurement, which needs four calls (a real run pays it once).
WARMUP_EPOCHS = 4
# The seed MLP's honest cost per training sample: the forward matmuls (2·(784·128 + 128·10)),
# the same again for the weight gradients, and the input gradient of the output layer only
# (2·128·10) — nothing needs the gradient of the pixels, so the first layer's is never
# computed. ≈ 0.41 MFLOP (counting 3× the forward pass would claim 0.61 and inflate "% peak").
MLP_FLOP_PER_SAMPLE = 2 * 2 * (784 * 128 + 128 * 10) + 2 * 128 * 10


# ----------------------------------------------------------------------------- workers


def _data(n_train: int, n_test: int, seed: int = 0):
    """MNIST-shaped synthetic digits: ten noisy templates and 10% label noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    templates = rng.integers(96, 160, (10, 28, 28))  # low contrast: accuracy well below 1

    def make(n):
        y = rng.integers(0, 10, n)
        x = np.clip(templates[y] + rng.normal(0, 60, (n, 28, 28)), 0, 255).astype(np.uint8)
        flipped = rng.random(n) < 0.1  # label noise: ~0.9 is the best any method can reach
        y[flipped] = rng.integers(0, 10, int(flipped.sum()))
        return x, y.astype(np.int32)

    return make(n_train), make(n_test)


def _text_data(n_train: int, n_test: int, seed: int = 0, length: int = 32, vocab: int = 1000):
    """Token-id sequences; the label says which of two keyword sets appears (as in text_transformer.yaml)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(n):
        x = rng.integers(10, vocab, (n, length)).astype(np.int32)
        y = rng.integers(0, 2, n).astype(np.int32)
        x[np.arange(n), rng.integers(0, length, n)] = 1 + y * 5 + rng.integers(0, 4, n)  # ids 1-4 or 6-9
        return x, y

    return make(n_train), make(n_test)


def _model(kind: str):
    import keras

    layers = keras.layers
    if kind == "transformer":
        from fmtrain.models.registry import OutputSpec
        from fmtrain.models.text import TextTransformerParams, build_text_transformer

        inputs = keras.Input((32,), dtype="int32")
        params = TextTransformerParams(vocab_size=1000, embed_dim=64, num_layers=2, num_heads=4, pooling="mean")
        return keras.Model(inputs, build_text_transformer(params, inputs, OutputSpec(2, "softmax")))
    if kind == "mlp":
        body = [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax")]
    else:
        body = [layers.Reshape((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
                layers.Dense(10, activation="softmax")]
    return keras.Sequential([keras.Input((28, 28)), layers.Rescaling(1 / 255), *body])


def worker(case: dict, method: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    make_data = _text_data if case["model"] == "transformer" else _data
    (x, y), (x_test, y_test) = make_data(case["n_train"], case["n_test"])
    model = _model(case["model"])
    batch, epochs = case["batch"], case["epochs"]
    if method == "fmtrain":
        from fmtrain.config.schema import MetricConfig
        from fmtrain.engine.trainer import Trainer
        from fmtrain.losses import build_loss
        from fmtrain.metrics import MetricContext, build_metrics

        metrics = build_metrics([MetricConfig(name="accuracy")], MetricContext("classification", 10, False, 10))
        loss = build_loss("sparse_categorical_crossentropy", {})
        from fmtrain.engine import planning

        trainer = Trainer(model, keras.optimizers.Adam(0.001), loss, metrics)
        # Trace, compile and decide XLA or not as a long run does: four epochs alone are too short
        # for the trial's 10% budget, which would keep the MLPs off XLA and time a short run's plan.
        planning.TRIAL_BUDGET = float("inf")
        trainer.fit(x, y, epochs=WARMUP_EPOCHS, batch_size=batch, seed=0)
        started = time.perf_counter()
        trainer.fit(x, y, epochs=epochs, batch_size=batch, seed=1)
        seconds = time.perf_counter() - started
        accuracy = trainer.evaluate(x_test, y_test)["accuracy"]
        plan = "XLA" if trainer.jit_compile else "graph"
    else:
        extra = {"steps_per_execution": 32, "jit_compile": True} if method == "tuned" else {}
        model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], **extra)
        model.fit(x, y, batch_size=batch, epochs=WARMUP_EPOCHS, verbose=0)
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        seconds = time.perf_counter() - started
        accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]
        plan = "XLA" if method == "tuned" else "graph"
    return {
        "plan": plan,
        "samples_per_second": len(y) * epochs / seconds,
        "accuracy": float(accuracy),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def matmul_gflops() -> dict:
    """The machine's float32 matmul peak (a 2048² product), and what the seed MLP's two large
    matmuls alone reach at each benchmarked batch: the forward ``x @ W`` and the weight gradient
    ``xᵀ @ g`` of the 784×128 layer, in one XLA-compiled loop over device-resident rows, best of 5.
    Those two are ~98% of a step's honest FLOPs, so their rate is the ceiling of "% peak"."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    matmul = tf.function(lambda m: tf.matmul(m, m))
    matmul(a).numpy()
    runs = 10
    started = time.perf_counter()
    for _ in range(runs):
        result = matmul(a)
    result.numpy()
    rates = {"peak": 2 * 2048**3 * runs / (time.perf_counter() - started) / 1e9}
    rows = tf.random.uniform((48000, 784))
    kernel = tf.random.uniform((784, 128))
    for batch in (32, 256):
        steps = 48000 // batch

        @tf.function(jit_compile=True)
        def two_matmuls(rows, kernel, batch=batch, steps=steps):
            total = tf.zeros((784, 128))
            for i in tf.range(steps):
                x = tf.slice(rows, [i * batch, 0], [batch, 784])
                total += tf.matmul(x, tf.matmul(x, kernel), transpose_a=True)
            return total

        two_matmuls(rows, kernel).numpy()
        best = min(_seconds(lambda: two_matmuls(rows, kernel).numpy()) for _ in range(5))
        rates[f"batch {batch}"] = 2 * 2 * 784 * 128 * batch * steps / best / 1e9
    return rates


def _seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- end to end


PLAIN_SCRIPT = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras
keras.utils.set_random_seed(42)
d = np.load(sys.argv[1])
x, y, xt, yt = d["x_train"] / 255.0, d["y_train"], d["x_test"] / 255.0, d["y_test"]
model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
    keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=int(sys.argv[2]), batch_size=32, validation_split=0.2, verbose=0)
print(model.evaluate(xt, yt, verbose=0)[1])
"""


# configs/mnist_cnn.yaml written as the plain Keras script a user would write.
PLAIN_CNN_SCRIPT = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras
keras.utils.set_random_seed(42)
d = np.load(sys.argv[1])
x, y, xt, yt = d["x_train"][..., None] / 255.0, d["y_train"], d["x_test"][..., None] / 255.0, d["y_test"]
layers = [keras.Input((28, 28, 1))]
for filters in (32, 64):
    layers += [keras.layers.Conv2D(filters, 3, padding="same", use_bias=False), keras.layers.BatchNormalization(),
               keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2), keras.layers.Dropout(0.1)]
model = keras.Sequential(layers + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(0.002), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=int(sys.argv[2]), batch_size=64, validation_split=0.1, verbose=0)
print(model.evaluate(xt, yt, verbose=0)[1])
"""

# configs/vit_small.yaml as a plain script: the same network (fmtrain's builder, so the layers are
# identical), the same sklearn digits, 70/10/20 train/validation/test, AdamW, batch 32.
PLAIN_VIT_SCRIPT = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from fmtrain.models.registry import OutputSpec
from fmtrain.models.vision import ViTParams, build_vit
keras.utils.set_random_seed(42)
digits = load_digits()
x, xt, y, yt = train_test_split(digits.images / 16.0, digits.target, test_size=0.2, random_state=42,
                                stratify=digits.target)
inputs = keras.Input((8, 8))
params = ViTParams(patch_size=2, embed_dim=64, num_layers=2, num_heads=4, pooling="cls")
model = keras.Model(inputs, build_vit(params, inputs, OutputSpec(10, "softmax")))
model.compile(optimizer=keras.optimizers.AdamW(0.002, weight_decay=0.0001), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(x, y, epochs=int(sys.argv[2]), batch_size=32, validation_split=0.125, verbose=0)
print(model.evaluate(xt, yt, verbose=0)[1])
"""

# configs/text_transformer.yaml as a plain script: the same generated sentences (fmtrain's generator),
# Keras's TextVectorization (400 tokens, 16 per sentence), the same network, 70/10/20, batch 32.
PLAIN_TEXT_SCRIPT = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, numpy as np
from sklearn.model_selection import train_test_split
from fmtrain.data.encoding import EncoderState
from fmtrain.data.synthetic import SentimentSource, load_synthetic_sentiment
from fmtrain.models.registry import OutputSpec
from fmtrain.models.text import TextTransformerParams, build_text_transformer
keras.utils.set_random_seed(42)
loaded = load_synthetic_sentiment(SentimentSource(options={"n": 2000, "vocab_size": 300}), EncoderState())
x, xt, y, yt = train_test_split(np.asarray(loaded.x), loaded.y, test_size=0.2, random_state=42)
vectorize = keras.layers.TextVectorization(max_tokens=400, output_sequence_length=16)
vectorize.adapt(x)
x, xt = vectorize(x), vectorize(xt)
inputs = keras.Input((16,), dtype="int64")
params = TextTransformerParams(vocab_size=400, embed_dim=32, num_layers=2, num_heads=2, pooling="mean")
model = keras.Model(inputs, build_text_transformer(params, inputs, OutputSpec(2, "softmax")))
model.compile(optimizer=keras.optimizers.Adam(0.002), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=int(sys.argv[2]), batch_size=32, validation_split=0.125, verbose=0)
print(model.evaluate(xt, yt, verbose=0)[1])
"""


class EndToEnd(NamedTuple):
    """A whole-process row: ``fmtrain fit CONFIG`` against a plain Keras script doing the same work."""

    config: str
    plain_script: str
    n_train: int
    """MNIST-shaped examples written to the ``.npz`` both read (0: the config's own data, no file)."""
    epochs: int
    overrides: tuple[str, ...] = ()


# Early stopping off where a config has it: the plain scripts run every epoch too.
END_TO_END = {
    "seed MLP": EndToEnd("configs/mnist_mlp.yaml", PLAIN_SCRIPT, 48000, 2),
    "CNN": EndToEnd("configs/mnist_cnn.yaml", PLAIN_CNN_SCRIPT, 5000, 6, ("train.early_stopping=null",)),
    "ViT": EndToEnd("configs/vit_small.yaml", PLAIN_VIT_SCRIPT, 0, 6, ("train.early_stopping=null",)),
    "text Transformer": EndToEnd("configs/text_transformer.yaml", PLAIN_TEXT_SCRIPT, 0, 6),
}


MEASURE_CHILD = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def end_to_end(name: str, quick: bool, repeat: int, epochs: int | None = None) -> dict:
    """Wall time and peak memory of `fmtrain fit CONFIG` vs the plain script on the same `.npz`,
    interleaved, best of ``repeat`` each (a fresh plan cache per fmtrain run: no run reuses a
    decision another made)."""
    import numpy as np

    row = END_TO_END[name]
    epochs = epochs or row.epochs
    results: dict[str, dict] = {}
    plans: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "mnist.npz"
        sets = [arg for override in row.overrides for arg in ("--set", override)]
        if row.n_train:
            n_train = row.n_train // 4 if quick else row.n_train
            (x, y), (xt, yt) = _data(n_train, n_train // 6)
            np.savez(npz, x_train=x, y_train=y.astype(np.uint8), x_test=xt, y_test=yt.astype(np.uint8))
            sets += ["--set", f"data.path={npz}"]
        script = Path(tmp) / "plain.py"
        script.write_text(row.plain_script)
        for attempt in range(max(1, repeat)):
            fmtrain = [sys.executable, "-m", "fmtrain", "fit", str(HERE.parent / row.config), "--quiet", *sets,
                       "--set", f"train.epochs={epochs}", "--run-dir", str(Path(tmp) / f"run{attempt}")]
            commands = {"plain": [sys.executable, str(script), str(npz), str(epochs)], "fmtrain": fmtrain}
            # The plain scripts import fmtrain's builders from this checkout, as `-m fmtrain` does.
            env = {**os.environ, "FMTRAIN_CACHE_DIR": str(Path(tmp) / f"cache{attempt}"),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
            for method, command in commands.items():
                # A fresh wrapper per command: RUSAGE_CHILDREN is a maximum over all children so far.
                started = time.perf_counter()
                output = subprocess.run([sys.executable, "-c", MEASURE_CHILD, *command], check=True,
                                        capture_output=True, text=True, env=env).stdout
                run = {"seconds": time.perf_counter() - started,
                       "peak_mb": float(output.strip().splitlines()[-1]) / 1024}
                if method == "fmtrain":
                    plans.append(_plan_of(Path(tmp) / f"run{attempt}"))
                if method not in results or run["seconds"] < results[method]["seconds"]:
                    results[method] = run
    results["fmtrain"]["plans"] = plans
    return results


def _plan_of(run_dir: Path) -> dict:
    """The plan fmtrain recorded in the run's metrics.json (compile.plan)."""
    plan = json.loads((run_dir / "metrics.json").read_text())["compile"].get("plan") or {}
    return {key: plan.get(key) for key in ("jit", "steps_per_execution", "source", "why")}


# ----------------------------------------------------------------------------- driver


def cases(quick: bool) -> list[dict]:
    scale = 4 if quick else 1
    return [
        {"name": "seed MLP, batch 32", "model": "mlp", "batch": 32,
         "n_train": 48000 // scale, "n_test": 10000 // scale, "epochs": 2},
        {"name": "seed MLP, batch 256", "model": "mlp", "batch": 256,
         "n_train": 48000 // scale, "n_test": 10000 // scale, "epochs": 3},
        {"name": "CNN, batch 64", "model": "cnn", "batch": 64,
         "n_train": 12000 // scale, "n_test": 2000 // scale, "epochs": 1},
        {"name": "Transformer, batch 64", "model": "transformer", "batch": 64, "n_train": 8000 // scale,
         "n_test": 2000 // scale, "epochs": 1},
    ]


def run_worker(case: dict, method: str) -> dict:
    # A fresh plan cache: every fmtrain run decides in its warm-up, none reuses a decision another made.
    with tempfile.TemporaryDirectory() as cache:
        output = subprocess.run([sys.executable, __file__, "--worker", json.dumps([case, method])],
                                check=True, capture_output=True, text=True,
                                env={**os.environ, "FMTRAIN_CACHE_DIR": cache}).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="quarter-size data")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs per method and case, interleaved; the fastest counts (noise only slows down)")
    parser.add_argument("--only", help="run only the cases whose name contains this text (e.g. CNN)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the whole-command comparison")
    parser.add_argument("--end-to-end-only", action="store_true", help="only the whole-command comparison")
    parser.add_argument("--epochs", type=int,
                        help="epochs of every whole-command row (default: each row's own, 6 or 2); more shows "
                             "a long run, where the steady epochs outweigh start-up and the final evaluation")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--matmul", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return
    if args.matmul:
        print(json.dumps(matmul_gflops()))
        return
    started = time.perf_counter()
    # The machine may be shared: the load says how much the ratios below can be trusted.
    print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f} on {} cores".format(*os.getloadavg(), os.cpu_count()))
    if args.end_to_end_only:
        gflops = 0.0
    else:
        rates = json.loads(subprocess.run([sys.executable, __file__, "--matmul"], check=True, capture_output=True,
                                          text=True).stdout.strip().splitlines()[-1])
        gflops = rates["peak"]
        ceilings = ", ".join(f"{name} {100 * rate / gflops:.0f}%" for name, rate in rates.items() if name != "peak")
        print(f"machine: {os.cpu_count()} CPU cores, 2048² float32 matmul {gflops:.1f} GFLOP/s; the seed MLP's two "
              f"784×128 matmuls alone (XLA loop) reach {ceilings} of it: the ceiling of its '% peak'\n")
        header = (f"{'case':<22}{'method':<10}{'samples/s':>11}{'× plain':>9}{'× tuned':>9}{'% peak':>8}"
                  f"{'accuracy':>10}{'peak MB':>9}{'steps':>7}")
        print(header)
        print("-" * len(header))
    selected = [] if args.end_to_end_only else cases(args.quick)
    for case in [c for c in selected if not args.only or args.only.lower() in c["name"].lower()]:
        runs = [{method: run_worker(case, method) for method in METHODS} for _ in range(max(1, args.repeat))]
        results = {method: max((r[method] for r in runs), key=lambda r: r["samples_per_second"]) for method in METHODS}
        for method in METHODS:
            r = results[method]
            speed = r["samples_per_second"]
            peak = f"{100 * speed * MLP_FLOP_PER_SAMPLE / (gflops * 1e9):.0f}%" if case["model"] == "mlp" else "-"
            versus_plain = speed / results["plain"]["samples_per_second"]
            versus_tuned = speed / results["tuned"]["samples_per_second"]
            print(f"{case['name']:<22}{method:<10}{speed:>11,.0f}{versus_plain:>9.2f}{versus_tuned:>9.2f}{peak:>8}"
                  f"{r['accuracy']:>10.4f}{r['peak_mb']:>9.0f}{r.get('plan', '?'):>7}")
    if args.no_end_to_end:
        return
    for name, row in END_TO_END.items():
        if args.only and args.only.lower() not in name.lower():
            continue
        e2e = end_to_end(name, args.quick, args.repeat, args.epochs)
        print(f"\nend to end, {name} ({row.config}), {args.epochs or row.epochs} epochs, best of {args.repeat} "
              "interleaved (wall time incl. Python + TensorFlow start-up):")
        for method, r in e2e.items():
            print(f"  {method:<8} {r['seconds']:6.1f} s   peak {r['peak_mb']:.0f} MB")
        plans = e2e["fmtrain"]["plans"]
        same = len({(p["jit"], p["steps_per_execution"]) for p in plans}) == 1
        print(f"  fmtrain's plan ({'the same in all' if same else 'DIFFERS between'} {len(plans)} runs): "
              f"jit {plans[0]['jit']}, {plans[0]['steps_per_execution']} steps per call, "
              f"{plans[0]['source']}: {plans[0]['why']}")
        print(f"  plain ÷ fmtrain: {e2e['plain']['seconds'] / e2e['fmtrain']['seconds']:.2f}×; "
              f"memory ratio {e2e['fmtrain']['peak_mb'] / e2e['plain']['peak_mb']:.2f}")
    print("\nload average at the end: {:.1f} {:.1f} {:.1f}; bench.py took {:.0f} s".format(
        *os.getloadavg(), time.perf_counter() - started))


if __name__ == "__main__":
    main()
