"""Streamed TFRecord shards against in-memory arrays: peak memory as the data grows, and throughput.

    python benchmarks/bench_stream.py                  # 200 MB and 800 MB of shards (issue 11's rows; long)
    python benchmarks/bench_stream.py --sizes-mb 20 80 # a quick sanity check
    python benchmarks/bench_stream.py --keep DIR       # write the shards to DIR (reused when present)
    python benchmarks/bench_stream.py --lists          # pixels as a float_list instead of raw bytes
    python benchmarks/bench_stream.py --images raw     # CNN images as raw uint8 bytes instead of PNG

The data is MNIST-shaped synthetic digits (784 float32 pixels per example, ~3.2 kB a record, as raw
bytes like ``fmtrain data pack`` writes them, or with ``--lists`` as a float_list), the
model the seed MLP (Dense 128 relu, dropout 0.1, softmax 10) at batch 256, trained by fmtrain's own
Trainer. Every measurement runs in its own subprocess:

- ``stream <size>``: one epoch streamed from that many MB of shards; the row reports the process's
  peak resident set, which should stay flat as the shards grow (issue 11: < 50 MB more for 4× the data);
- ``mlp``: samples per second over the second epoch (after one warm-up epoch of tracing) streamed
  from the smallest size vs the in-memory graph feed (issue 11: ≥ 0.5×);
- ``cnn``: the same for configs/mnist_cnn.yaml's model (two conv blocks, batch 64) on synthetic
  28×28×1 digits stored as PNG (or ``--images raw``: raw uint8 bytes), decoded inside tf.data
  (issue 11: ≥ 0.9×, the model is compute-bound).

Throughput is the best of ``--speed-runs`` runs of each feed, the two feeds taking turns so that a
busy machine slows both alike; the ratio compares numbers measured in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PIXELS = 784
RECORD_BYTES = PIXELS * 4 + 40  # float_list payload plus the Example's framing, roughly
BATCH = 256
CNN_EXAMPLES = 4096
CNN_BATCH = 64  # configs/mnist_cnn.yaml's


def write_shards(folder: Path, megabytes: int, raw: bool, shards: int = 8, seed: int = 0) -> int:
    """``megabytes`` of shards in ``folder`` (kept if there already); returns the example count."""
    import numpy as np
    import tensorflow as tf

    n = megabytes * 1_000_000 // RECORD_BYTES
    marker = folder / "count.json"
    if marker.exists():
        return json.loads(marker.read_text())["n"]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    templates = rng.random((10, PIXELS), dtype=np.float32)
    bounds = np.linspace(0, n, shards + 1).astype(int)
    for shard in range(shards):
        with tf.io.TFRecordWriter(str(folder / f"train-{shard:05d}.tfrecord")) as writer:
            for start in range(bounds[shard], bounds[shard + 1], 4096):
                stop = min(start + 4096, bounds[shard + 1])
                y = rng.integers(0, 10, stop - start)
                x = templates[y] + rng.normal(0, 0.5, (stop - start, PIXELS)).astype(np.float32)
                for row, label in zip(x, y, strict=True):
                    pixels = (tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.astype("<f4").tobytes()]))
                              if raw else tf.train.Feature(float_list=tf.train.FloatList(value=row)))
                    feature = {"x": pixels,
                               "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    marker.write_text(json.dumps({"n": int(n)}))
    return int(n)


def write_images(folder: Path, n: int, encoding: str, shards: int = 8, seed: int = 0) -> int:
    """``n`` synthetic 28×28×1 digits (a template per class plus noise) as PNG or raw uint8 records."""
    import numpy as np
    import tensorflow as tf

    marker = folder / "count.json"
    if marker.exists():
        return json.loads(marker.read_text())["n"]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (10, 28, 28, 1))
    bounds = np.linspace(0, n, shards + 1).astype(int)
    for shard in range(shards):
        with tf.io.TFRecordWriter(str(folder / f"train-{shard:05d}.tfrecord")) as writer:
            for _ in range(bounds[shard], bounds[shard + 1]):
                label = int(rng.integers(0, 10))
                image = np.clip(templates[label] + rng.normal(0, 40, (28, 28, 1)), 0, 255).astype(np.uint8)
                value = image.tobytes() if encoding == "raw" else tf.io.encode_png(image).numpy()
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[value])),
                           "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    marker.write_text(json.dumps({"n": n}))
    return n


def cnn_config(folder: Path, encoding: str) -> Path:
    """configs/mnist_cnn.yaml's preprocessing, model and optimizer on the shards in ``folder``."""
    image = ({"dtype": "uint8", "shape": [28, 28, 1], "raw": True} if encoding == "raw"
             else {"shape": [28, 28, 1], "image": "png"})
    return _write_config(folder, "bench_stream_cnn", {"image": image, "label": "int64"}, CNN_BATCH, {
        "preprocess": [{"rescale": {"scale": 1 / 255}}],
        "model": {"type": "cnn", "filters": [32, 64], "dropout": 0.1},
        "optimizer": {"name": "adam", "learning_rate": 0.002}})


def config(folder: Path, raw: bool) -> Path:
    """The seed MLP (with dropout) on the pixel shards in ``folder``."""
    pixels = {"dtype": "float32", "shape": [PIXELS], "raw": raw}
    return _write_config(folder, "bench_stream", {"x": pixels, "label": "int64"}, BATCH, {
        "model": {"type": "mlp", "hidden_units": [128], "activation": "relu", "dropout": 0.1},
        "optimizer": {"name": "adam", "learning_rate": 0.001}})


def _write_config(folder: Path, name: str, features: dict, batch_size: int, body: dict) -> Path:
    """``folder/bench.yaml``: a tfrecord source over ``folder/train-*.tfrecord`` (digits 0-9 in
    ``label``), ``body`` (preprocessing, model, optimizer), 2 epochs without XLA."""
    import yaml

    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "seed": 0,
        "data": {"source": "tfrecord", "files": {"train": f"{folder}/train-*.tfrecord"}, "features": features,
                 "label": "label", "classes": [str(digit) for digit in range(10)], "batch_size": batch_size,
                 "shuffle_buffer": 10000},
        **body,
        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
        "train": {"epochs": 2, "jit_compile": False}}, sort_keys=False))
    return path


def worker(folder: str, method: str, epochs: int) -> dict:
    """Train ``epochs`` epochs; the last one's samples/s, the final accuracy and the peak RSS."""
    import resource

    from fmtrain.config import load_config
    from fmtrain.engine.device import configure
    from fmtrain.fit import FitOptions, _make_trainer, _prepare

    cfg = load_config(Path(folder) / "bench.yaml")
    configure("auto", cfg.seed, False)
    prepared = _prepare(cfg, FitOptions(), None, "float32")
    trainer = _make_trainer(cfg, prepared)
    stream = prepared.splits.train
    batch = cfg.data.batch_size
    if method == "memory":
        x, y = stream.arrays(None)
        result = trainer.fit(x, y, epochs=epochs, batch_size=batch, seed=cfg.seed)
    else:
        result = trainer.fit(stream, None, epochs=epochs, batch_size=batch, seed=cfg.seed)
    last = result.history[-1]
    return {"method": method, "examples": len(stream), "samples_per_s": round(len(stream) / last["seconds"], 1),
            "accuracy": round(last["accuracy"], 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run(folder: Path, method: str, epochs: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", str(folder), method, str(epochs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(folder: Path, runs: int) -> dict:
    """Samples/s of each feed on the shards in ``folder``: the best of ``runs``, the feeds taking turns."""
    results: dict[str, list[dict]] = {"memory": [], "stream": []}
    for _ in range(runs):
        for method in results:
            results[method].append(run(folder, method, 2))
    return {method: max(rows, key=lambda r: r["samples_per_s"]) | {"runs": [r["samples_per_s"] for r in rows]}
            for method, rows in results.items()}


def report(name: str, size: str, best: dict, target: float) -> None:
    for method, row in best.items():
        print(f"{name} {method:7s} {size:>9s}  {row['samples_per_s']:10.1f} samples/s  accuracy {row['accuracy']:.4f}  "
              f"peak RSS {row['peak_rss_mb']:.1f} MB  (best of {', '.join(map(str, row['runs']))})", flush=True)
    ratio = best["stream"]["samples_per_s"] / best["memory"]["samples_per_s"]
    print(f"{name} streamed/in-memory throughput {ratio:.2f}× (target ≥ {target})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--keep", type=Path, help="Folder for the shards (reused when present).")
    parser.add_argument("--lists", action="store_true", help="Pixels as a float_list, not raw bytes.")
    parser.add_argument("--images", choices=["png", "raw"], default="png", help="How the CNN rows store images.")
    parser.add_argument("--repeat", type=int, default=3,
                        help="Runs per memory row; the median is reported (one run varies by ±40 MB here).")
    parser.add_argument("--speed-runs", type=int, default=3,
                        help="Runs of each feed per throughput row; the best counts.")
    parser.add_argument("--no-cnn", action="store_true", help="Skip the CNN throughput row.")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], int(args.worker[2]))))
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_stream-"))
    rows = []
    encoding = "lists" if args.lists else "raw"
    for size in args.sizes_mb:
        folder = root / f"{size}mb-{encoding}"
        n = write_shards(folder, size, raw=not args.lists)
        config(folder, raw=not args.lists)
        runs = sorted((run(folder, "stream", 1) for _ in range(args.repeat)), key=lambda r: r["peak_rss_mb"])
        rows.append({"size_mb": size, "examples": n, **runs[len(runs) // 2]})
        print(f"stream  {size:5d} MB  {encoding:5s} {n:8d} examples  peak RSS {rows[-1]['peak_rss_mb']:8.1f} MB "
              f"(median of {args.repeat}: {', '.join(str(r['peak_rss_mb']) for r in runs)})", flush=True)
    growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    print(f"peak RSS grows {growth:+.1f} MB from {rows[0]['size_mb']} to {rows[-1]['size_mb']} MB of shards "
          f"(target < 50)", flush=True)
    smallest = min(args.sizes_mb)
    report("mlp", f"{smallest} MB", speed(root / f"{smallest}mb-{encoding}", args.speed_runs), 0.5)
    if not args.no_cnn:
        folder = root / f"cnn-{args.images}"
        write_images(folder, CNN_EXAMPLES, args.images)
        cnn_config(folder, args.images)
        report("cnn", f"{CNN_EXAMPLES} img", speed(folder, args.speed_runs), 0.9)


if __name__ == "__main__":
    main()
