"""How long the commands that never import TensorFlow take, whole process, warm (issue 10: < 0.3 s).

    python benchmarks/bench_startup.py             # best of 7 runs of each command
    python benchmarks/bench_startup.py --runs 15

Each command runs once untimed (it fills fmtrain's schema cache and, unless Python is told not
to, writes the bytecode of fmtrain's modules), then ``--runs`` times; the fastest run counts: on a
shared machine noise only ever slows a run down. Python's own start-up (``python -c pass``) is
the baseline printed beside them.

Whether Python may cache bytecode matters here: with ``PYTHONDONTWRITEBYTECODE=1`` set and no
``__pycache__`` beside fmtrain's sources (an editable install that was never compiled), every run
compiles each fmtrain module it imports again. ``make install`` compiles them once, as pip does
for a regular install; the table says which case it measured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FMTRAIN = [sys.executable, "-m", "fmtrain"]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "fmtrain --help": [*FMTRAIN, "--help"],
    "fmtrain validate configs/mnist_mlp.yaml": [*FMTRAIN, "validate", "configs/mnist_mlp.yaml"],
    "fmtrain validate configs/vit_small.yaml": [*FMTRAIN, "validate", "configs/vit_small.yaml"],
    "fmtrain list models": [*FMTRAIN, "list", "models"],
    "fmtrain schema": [*FMTRAIN, "schema"],
}
TARGET_SECONDS = 0.3


def wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def bytecode_cached() -> bool:
    """Whether fmtrain's sources have current bytecode beside them (what Python reads instead of compiling)."""
    import importlib.util

    sources = sorted((ROOT / "fmtrain").rglob("*.py"))
    return all(Path(importlib.util.cache_from_source(str(source))).exists() for source in sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7,
                        help="timed runs of each command, interleaved; the fastest counts")
    args = parser.parse_args()
    print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f} on {} cores".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "FMTRAIN_CACHE_DIR": cache}
        for command in COMMANDS.values():  # untimed: fills the schema cache (and bytecode, where allowed)
            wall(command, env)
        best = {name: float("inf") for name in COMMANDS}
        for _ in range(max(1, args.runs)):
            for name, command in COMMANDS.items():
                best[name] = min(best[name], wall(command, env))
    cached = bytecode_cached()
    print(f"fmtrain's bytecode: {'cached' if cached else 'NOT cached: each run compiles fmtrain modules again'}"
          f"{' (PYTHONDONTWRITEBYTECODE is set)' if os.environ.get('PYTHONDONTWRITEBYTECODE') else ''}\n")
    print(f"{'command':<44}{'best s':>8}  target < {TARGET_SECONDS} s")
    for name, seconds in best.items():
        verdict = "" if name.startswith("python") else ("met" if seconds < TARGET_SECONDS else "MISSED")
        print(f"{name:<44}{seconds:>8.3f}  {verdict}")


if __name__ == "__main__":
    main()
