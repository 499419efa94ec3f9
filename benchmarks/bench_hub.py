"""fmtrain's loop against KerasHub's own ``task.fit`` on the same tiny BERT preset, batch and data.

    python benchmarks/bench_hub.py               # 2,000 generated sentences, 3 timed epochs, best of 2
    python benchmarks/bench_hub.py --quick       # 500 sentences, for a sanity check

The preset is the tests' tiny BERT classifier (tests/hub_presets.py: 1 layer, 32 wide, random weights,
a vocabulary from the text), written once to a temporary folder. Each measurement runs in its own
subprocess. Methods:

- ``task.fit``: ``keras_hub.models.TextClassifier.from_preset(...)`` compiled by KerasHub and fitted on
  the raw strings, its preprocessor mapped over the data each epoch (as KerasHub documents it);
- ``task.fit+tok``: the same task fitted on text tokenized once beforehand (the fairest Keras baseline);
- ``fmtrain``: fmtrain's Trainer on the model ``model.type: hub`` builds, the text tokenized once.

Throughput is training samples per second over the timed epochs after one warm-up epoch (tracing,
compilation and fmtrain's XLA-or-not measurement excluded alike); fmtrain's one-off tokenization
time is reported beside it. The loss is the last timed epoch's training loss; accuracy is on
held-out sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("task.fit", "task.fit+tok", "fmtrain")
WARMUP_EPOCHS = 1
BATCH = 32
LEARNING_RATE = 0.002


def _data(n: int):
    sys.path.insert(0, str(HERE.parent / "tests"))
    import numpy as np
    from hub_presets import sentiment_rows

    rows = sentiment_rows(n + n // 4, seed=0)
    texts = np.array([text for text, _ in rows], dtype=object)
    labels = np.array([int(label == "pos") for _, label in rows], dtype=np.int32)
    return (texts[:n], labels[:n]), (texts[n:], labels[n:])


def worker(preset: str, method: str, n: int, epochs: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import keras_hub
    import numpy as np

    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = _data(n)
    tokenize_seconds = 0.0
    if method == "fmtrain":
        from fmtrain.config.schema import MetricConfig
        from fmtrain.engine.trainer import Trainer
        from fmtrain.losses import build_loss
        from fmtrain.metrics import MetricContext, build_metrics
        from fmtrain.models import OutputSpec, build_model
        from fmtrain.models.hub import HubParams, text_preprocessor, tokenize

        params = HubParams(type="hub", task="text_classifier", preset=preset)
        started = time.perf_counter()
        x, x_test = tokenize(text_preprocessor(params), x), tokenize(text_preprocessor(params), x_test)
        tokenize_seconds = time.perf_counter() - started
        model = build_model(params, input_shape={k: v.shape[1:] for k, v in x.items()}, preprocessing={},
                            output=OutputSpec(2, "softmax"), name="bench", input_dtypes={k: "int32" for k in x})
        metrics = build_metrics([MetricConfig(name="accuracy")], MetricContext("classification", 2, False, 2))
        trainer = Trainer(model, keras.optimizers.Adam(LEARNING_RATE), build_loss("sparse_categorical_crossentropy",
                                                                               {}), metrics)
        trainer.fit(x, y, epochs=WARMUP_EPOCHS, batch_size=BATCH, seed=0)
        started = time.perf_counter()
        result = trainer.fit(x, y, epochs=epochs, batch_size=BATCH, seed=1)
        seconds = time.perf_counter() - started
        loss = result.history[-1]["loss"]
        accuracy = trainer.evaluate(x_test, y_test)["accuracy"]
    else:
        task = keras_hub.models.TextClassifier.from_preset(preset, num_classes=2)
        task.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))  # KerasHub's loss and metrics
        if method == "task.fit+tok":
            preprocessor, task.preprocessor = task.preprocessor, None
            x = {k: np.asarray(v) for k, v in preprocessor(x).items()}
            x_test = {k: np.asarray(v) for k, v in preprocessor(x_test).items()}
        task.fit(x, y, batch_size=BATCH, epochs=WARMUP_EPOCHS, verbose=0)
        started = time.perf_counter()
        history = task.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
        seconds = time.perf_counter() - started
        loss = history.history["loss"][-1]
        scores = task.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
        accuracy = scores["sparse_categorical_accuracy"]
    return {"samples_per_second": len(y) * epochs / seconds, "loss": float(loss), "accuracy": float(accuracy),
            "tokenize_seconds": tokenize_seconds}


def build_preset(folder: Path, n: int) -> str:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from hub_presets import bert_classifier_preset

    (texts, _), _ = _data(n)
    return str(bert_classifier_preset(folder / "bert_tiny", list(texts)))


def _last_line(args: list[str]) -> str:
    """The last line a subprocess of this script prints (a fresh interpreter per measurement)."""
    out = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 sentences instead of 2,000")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method, interleaved; the fastest counts")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--build-preset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return
    if args.build_preset:
        folder, count = json.loads(args.build_preset)
        print(build_preset(Path(folder), count))
        return
    n = 500 if args.quick else 2000
    with tempfile.TemporaryDirectory() as tmp:
        preset = _last_line([__file__, "--build-preset", json.dumps([tmp, n])])
        runs = []
        for _ in range(max(1, args.repeat)):
            row = {}
            for method in METHODS:
                job = json.dumps([preset, method, n, args.epochs])
                row[method] = json.loads(_last_line([__file__, "--worker", job]))
            runs.append(row)
    best = {m: max((r[m] for r in runs), key=lambda r: r["samples_per_second"]) for m in METHODS}
    print(f"tiny BERT preset, {n} sentences, batch {BATCH}, {args.epochs} timed epochs, best of {args.repeat}, "
          f"{os.cpu_count()} CPU cores")
    header = f"{'method':<14}{'samples/s':>11}{'× task.fit':>12}{'loss':>9}{'accuracy':>10}{'tokenize s':>12}"
    print(header)
    print("-" * len(header))
    for method in METHODS:
        r = best[method]
        ratio = r["samples_per_second"] / best["task.fit"]["samples_per_second"]
        print(f"{method:<14}{r['samples_per_second']:>11,.0f}{ratio:>12.2f}{r['loss']:>9.4f}{r['accuracy']:>10.4f}"
              f"{r['tokenize_seconds']:>12.2f}")


if __name__ == "__main__":
    main()
