"""One worker against ``fmtrain launch --workers 2`` (and mirrored over 2 logical CPUs) on this machine.

    python benchmarks/bench_distribute.py               # 3 interleaved runs of each (a few minutes on 2 cores)
    python benchmarks/bench_distribute.py --repeat 1 --examples 8000   # a quick sanity check

The seed MLP (Flatten, Dense 128 relu, Dense 10 softmax, Adam) at a global batch of 256 on synthetic
MNIST-shaped data (784 float32 pixels, 10 classes) from an .npz file, trained by the real CLI in fresh
processes:

- ``1 worker``: ``fmtrain fit`` on one device;
- ``2 workers (launch)``: ``fmtrain launch --workers 2``, MultiWorkerMirroredStrategy over two local
  processes talking gRPC on localhost, each replica on 128 rows of every batch;
- ``mirrored, 2 logical CPUs``: ``fmtrain fit --set distribute.cpu_devices=2 --set distribute.strategy=mirrored``,
  one process, two replicas.

Throughput is training samples per second over the epochs after the first (tracing and start-up
excluded alike), read from the chief's history.csv. The methods run interleaved, --repeat times
each, and the fastest run is reported: on a shared machine noise only ever slows a run down. On a
machine with 2 cores no speed-up is expected: the rows show what synchronising the replicas costs.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

PIXELS = 784
BATCH = 256
METHODS = {
    "1 worker": ["fit"],
    "2 workers (launch)": ["launch", "--workers", "2"],
    "mirrored, 2 logical CPUs": ["fit", "--set", "distribute.cpu_devices=2", "--set", "distribute.strategy=mirrored"],
}


def write_data(folder: Path, examples: int, seed: int = 0) -> Path:
    """A config of the seed MLP over ``examples`` synthetic MNIST-shaped images in ``folder``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    templates = rng.random((10, PIXELS), dtype=np.float32)
    y = rng.integers(0, 10, examples)
    # Noise that makes the classes overlap, so the final loss (equal across methods) is not ~0.
    x = (templates[y] + rng.normal(0, 4.0, (examples, PIXELS))).astype(np.float32)
    np.savez(folder / "data.npz", x=x, y=y)
    path = folder / "bench.yaml"
    path.write_text(f"""name: bench_distribute
seed: 0
data: {{source: npz, path: {folder / 'data.npz'}, validation_split: 0.0, test_split: 0.0, batch_size: {BATCH}}}
model:
  type: sequential
  layers:
    - Dense: {{units: 128, activation: relu}}
    - Dense: {{units: 10, activation: softmax}}
optimizer: {{name: adam, learning_rate: 0.001}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
train: {{epochs: 4, early_stopping: null}}
""")
    return path


def run(config: Path, method: str, run_dir: Path, examples: int) -> dict:
    """One run of ``method``: samples/s over epochs 2.., and the last epoch's loss."""
    subprocess.run([sys.executable, "-m", "fmtrain", *METHODS[method], str(config), "--run-dir", str(run_dir),
                    "--device", "cpu", "--quiet"], check=True, capture_output=True, text=True)
    with open(run_dir / "history.csv", newline="") as rows:
        history = list(csv.DictReader(rows))
    seconds = sum(float(row["seconds"]) for row in history[1:])
    return {"samples_per_s": examples * (len(history) - 1) / seconds, "loss": float(history[-1]["loss"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=30000, help="Training examples (default 30000).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each method, interleaved; the best counts.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_distribute-"))
    config = write_data(root, args.examples)
    runs: dict[str, list[dict]] = {method: [] for method in METHODS}
    for attempt in range(args.repeat):
        for index, method in enumerate(METHODS):
            runs[method].append(run(config, method, root / f"run-{index}-{attempt}", args.examples))
    base = max(r["samples_per_s"] for r in runs["1 worker"])
    print(f"seed MLP, global batch {BATCH}, {args.examples} examples, best of {args.repeat} interleaved runs")
    print(f"{'method':26s} {'samples/s':>10s} {'vs 1 worker':>12s} {'final loss':>11s}")
    for method, results in runs.items():
        best = max(results, key=lambda r: r["samples_per_s"])
        print(f"{method:26s} {best['samples_per_s']:10.0f} {best['samples_per_s'] / base:11.2f}× {best['loss']:11.5f}")


if __name__ == "__main__":
    main()
