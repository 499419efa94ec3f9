"""fmtrain on a GPU: bench.py's rows in float32 and in bf16 mixed precision, then the CNN, ViT and
text configs end to end (``fmtrain fit``, float32 and bf16), printed as one markdown table.

Run it through benchmarks/gpu.sh, which first checks that this Python has TensorFlow (installing
carried wheels if any) and ends in time:

    benchmarks/gpu.sh                 # on a machine with a GPU, well under 8 minutes
    benchmarks/gpu.sh --cpu-check     # the same pipeline on the CPU at tiny sizes: not a measurement

Each precision's bench rows run in one subprocess (the methods one after another, case by case,
each with a fresh plan cache and Keras session); each config run is its own ``fmtrain fit``
process. Every subprocess has a time limit taken from what is left of --budget, so the whole ends
in time; a row that fails or runs out of time says so in the table and the rest still run.

Throughput is bench.py's: training samples per second over the epochs after its warm-up epochs.
On a GPU a fast method finishes bench.py's few timed epochs in milliseconds, so a row whose timed
epochs took under --min-seconds is measured again with enough epochs to last that long (the table
says how many epochs and seconds were timed). Accuracy is on held-out data after those epochs, a
sanity check rather than a comparison. The config rows' samples/s is fmtrain's own figure from the
run's metrics.json; "wall s" is the whole process, start-up and the plan decision included.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import functools
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METHODS = ("plain", "tuned", "fmtrain")
# Keras's global dtype policy for each precision a row runs under.
POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16"}
# What train.mixed_precision says for each, in the config rows.
CONFIG_PRECISION = {"float32": "off", "bf16": "bf16"}
# A re-measured row runs at most this many timed epochs, however fast it is.
MAX_EPOCHS = 400
EXIT_CANNOT_RUN = 3  # no TensorFlow, or (outside --cpu-check) no GPU: the line printed says which
CPU_CHECK_NOTE = "CPU check, not a GPU measurement"


@dataclass
class Row:
    """One line of the table: a bench.py measurement or one ``fmtrain fit`` run."""

    name: str
    precision: str  # a key of POLICIES
    method: str
    samples_per_second: float | None = None
    accuracy: float | None = None
    plan: str = ""
    epochs: int | None = None
    timed_seconds: float | None = None
    wall_seconds: float | None = None
    policy: str = ""
    """Keras's dtype policy as the row's process saw it (the config rows: metrics.json precision)."""
    compute_dtype: str = ""
    variable_dtype: str = ""
    devices: str = ""
    error: str = ""


# ----------------------------------------------------------------------------- sizes


def bench_cases(cpu_check: bool, quick: bool) -> list[dict]:
    """bench.py's cases; on the CPU check a few batches of each, enough to run every code path."""
    bench = _bench_module()
    cases = bench.cases(quick)
    if cpu_check:
        for case in cases:
            case.update(n_train=case["batch"] * 4, n_test=128, epochs=1)
    return cases


class ConfigRun(NamedTuple):
    name: str
    config: str
    epochs: int
    sets: tuple[str, ...]
    """--set overrides besides precision, epochs and early stopping (off: every run trains every epoch)."""


def config_runs(cpu_check: bool, npz: Path) -> list[ConfigRun]:
    """The CNN, ViT and text configs, every one offline: the CNN reads bench.py's synthetic
    MNIST-shaped digits, ViT the bundled 8×8 digits, the text config its generated sentences."""
    text_data = ("data.options={n: 400, vocab_size: 300}",) if cpu_check else ()
    return [
        ConfigRun("CNN (mnist_cnn.yaml)", "configs/mnist_cnn.yaml", 1 if cpu_check else 6, (f"data.path={npz}",)),
        ConfigRun("ViT (vit_small.yaml)", "configs/vit_small.yaml", 1 if cpu_check else 10, ()),
        ConfigRun("text (text_transformer.yaml)", "configs/text_transformer.yaml", 1 if cpu_check else 8, text_data),
    ]


def _mnist_npz(path: Path, cpu_check: bool) -> Path:
    import numpy as np

    n_train = 512 if cpu_check else 12000
    (x, y), (xt, yt) = _bench_module()._data(n_train, n_train // 6)
    np.savez(path, x_train=x, y_train=y.astype(np.uint8), x_test=xt, y_test=yt.astype(np.uint8))
    return path


def _bench_module():
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import bench

    return bench


# ----------------------------------------------------------------------------- subprocesses


def probe() -> dict:
    """TensorFlow's view of this machine (run in its own process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import fmtrain

    gpus = tf.config.list_physical_devices("GPU")
    build = tf.sysconfig.get_build_info()
    return {
        "tensorflow": tf.__version__, "keras": keras.__version__, "fmtrain": fmtrain.__version__,
        "python": platform.python_version(), "built_with_cuda": tf.test.is_built_with_cuda(),
        "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version"),
        "gpus": [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus],
    }


def bench_group(spec: dict) -> None:
    """Run every (case, method) of one precision in this process, appending one JSON line per row to
    spec["results"] as each finishes (a later crash or time-out keeps the rows before it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    bench = _bench_module()
    policy = POLICIES[spec["precision"]]
    build_model = bench._model
    seen: dict[str, str] = {}

    def model_under_policy(kind: str):
        model = build_model(kind)
        if keras.mixed_precision.global_policy().compute_dtype != "float32" and model.outputs[0].dtype != "float32":
            # The output in float32, as fmtrain's own models have it under mixed precision.
            model = keras.Model(model.inputs, keras.layers.Activation("linear", dtype="float32")(model.outputs[0]))
        layer = _first_weighted_layer(model)
        seen.update(policy=keras.mixed_precision.global_policy().name, compute_dtype=layer.compute_dtype,
                    variable_dtype=layer.weights[0].dtype)
        return model

    bench._model = model_under_policy
    for case, method in spec["jobs"]:
        started = time.perf_counter()
        row = Row(case["name"], spec["precision"], method)
        seen.clear()
        try:
            _measure(bench, case, method, policy, spec["min_seconds"], row)
        except Exception as error:  # the row records it; the other rows still run
            row.error = f"{type(error).__name__}: {_first_line(str(error))}"
        row.wall_seconds = time.perf_counter() - started
        row.policy, row.compute_dtype, row.variable_dtype = (seen.get(k, "") for k in
                                                             ("policy", "compute_dtype", "variable_dtype"))
        with open(spec["results"], "a", encoding="utf-8") as results:
            results.write(json.dumps(asdict(row)) + "\n")


def _measure(bench, case: dict, method: str, policy: str, min_seconds: float, row: Row) -> None:
    import keras

    for attempt in range(2):
        keras.backend.clear_session()  # a fresh session per measurement; it also resets the dtype policy
        keras.mixed_precision.set_global_policy(policy)
        with tempfile.TemporaryDirectory() as cache:  # every fmtrain run decides its own plan
            os.environ["FMTRAIN_CACHE_DIR"] = cache
            result = bench.worker(case, method)
        timed = case["n_train"] * case["epochs"] / result["samples_per_second"]
        if attempt or timed >= min_seconds or case["epochs"] >= MAX_EPOCHS:
            break
        case = {**case, "epochs": min(MAX_EPOCHS, math.ceil(case["epochs"] * 1.25 * min_seconds / timed))}
    row.samples_per_second, row.accuracy, row.plan = result["samples_per_second"], result["accuracy"], result["plan"]
    row.epochs, row.timed_seconds = case["epochs"], timed


def _first_weighted_layer(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            found = _first_weighted_layer(layer)
            if found is not None:
                return found
        elif layer.weights:
            return layer
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:160] if lines else "(no message)"


def _last_line(path: Path) -> str:
    """The last meaningful line of a subprocess's log (a traceback's last line is its error)."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(no output)"


class Runner:
    """Subprocesses with time limits shared out of one budget, so the whole ends in time; ``jobs`` steps
    at a time (one on a GPU: a measurement has the machine to itself)."""

    def __init__(self, budget: float, env: dict[str, str], tmp: Path, jobs: int = 1):
        self.started = time.monotonic()
        self.deadline = self.started + budget
        self.env = env
        self.tmp = tmp
        self.jobs = jobs
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopped = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, command: list[str], timeout: float, log: Path, **env: str) -> tuple[int | None, float]:
        """(exit status, or None when it ran out of time; wall seconds), its output in ``log``."""
        started = time.perf_counter()
        with open(log, "w", encoding="utf-8") as out:
            with self.lock:
                if self.stopped:
                    return None, 0.0
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**self.env, **env},
                                           cwd=ROOT, start_new_session=True)
                self.running.add(process)
            try:
                code: int | None = process.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                code = None
                _kill(process)
            finally:
                with self.lock:
                    self.running.discard(process)
        return code, time.perf_counter() - started

    def why(self, code: int | None, seconds: float, log: Path) -> str:
        """Why a step's subprocess ended without finishing its rows."""
        if self.stopped:
            return "interrupted"
        if code is None:
            return f"timed out after {seconds:.0f} s"
        if code < 0:
            return f"killed by {signal.Signals(-code).name} after {seconds:.0f} s"
        return f"exit {code}: {_last_line(log)}"

    def stop_all(self) -> None:
        """Start nothing more and kill what runs (an interrupt)."""
        with self.lock:
            self.stopped = True
            running = list(self.running)
        for process in running:
            _kill(process)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.0f} s] {text}", file=sys.stderr, flush=True)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


# ----------------------------------------------------------------------------- driver


def run_all(args, runner: Runner, cpu_check: bool) -> list[Row]:
    """Every step, ``runner.jobs`` at a time; each step's limit is its share (by weight) of the time
    left when it starts, so later steps get what earlier ones did not use."""
    cases = [case for case in bench_cases(cpu_check, args.quick)
             if not args.only or args.only.lower() in case["name"].lower()]
    npz = _mnist_npz(runner.tmp / "mnist.npz", cpu_check)
    configs = [run for run in config_runs(cpu_check, npz)
               if not args.only or args.only.lower() in run.name.lower()]
    steps: list[tuple[int, Row, Callable[[int, float], list[Row]]]] = []  # (weight, its row if it breaks, step)
    if cases:
        steps += [(6, Row("bench.py rows", precision, ""),
                   functools.partial(_bench_step, runner, cases, precision, args.min_seconds))
                  for precision in POLICIES]
    steps += [(1, Row(run.name, precision, "fmtrain fit"),
               functools.partial(_config_step, runner, run, precision, cpu_check))
              for run in configs for precision in POLICIES]
    weight_left = [sum(weight for weight, _, _ in steps)]

    def start(index: int) -> list[Row]:
        weight, broken, step = steps[index]
        with runner.lock:
            share = runner.left() * weight * runner.jobs / weight_left[0]
            weight_left[0] -= weight
        try:
            return step(index, min(share, runner.left()))
        except Exception as error:  # a step that breaks costs its rows, not the table
            broken.error = f"{type(error).__name__}: {_first_line(str(error))}"
            runner.say(f"{broken.name} · {broken.precision}: {broken.error}")
            return [broken]

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=runner.jobs)
    futures = [pool.submit(start, index) for index in range(len(steps))]
    interrupted = False
    try:
        for future in concurrent.futures.as_completed(futures):
            future.result()
    except KeyboardInterrupt:
        interrupted = True
        runner.say("interrupted: stopping the steps that run; the table holds the rows so far")
        for future in futures:
            future.cancel()
        runner.stop_all()
    finally:
        pool.shutdown(wait=True)
    rows = [row for future in futures if future.done() and not future.cancelled() for row in future.result()]
    if interrupted:
        rows.append(Row("(interrupted)", "", "", error="the steps after these did not run"))
    return rows


def _bench_step(runner: Runner, cases: list[dict], precision: str, min_seconds: float, index: int,
                timeout: float) -> list[Row]:
    results = runner.tmp / f"bench-{precision}.jsonl"
    jobs = [(case, method) for case in cases for method in METHODS]
    spec = {"precision": precision, "jobs": jobs, "min_seconds": min_seconds, "results": str(results)}
    runner.say(f"bench.py rows, {precision}: {len(jobs)} measurements in one process (limit {timeout:.0f} s)")
    log = runner.tmp / f"step{index}.log"
    code, seconds = runner.run([sys.executable, __file__, "--bench-group", json.dumps(spec)], timeout, log)
    done = [Row(**json.loads(line)) for line in results.read_text().splitlines()] if results.exists() else []
    for row in done:
        runner.say(f"  {row.name} · {precision} · {row.method}: " + (
            row.error or f"{row.samples_per_second:,.0f} samples/s ({row.policy}, compute {row.compute_dtype})"))
    why = runner.why(code, seconds, log)
    missing = [Row(case["name"], precision, method, error=f"not run ({why})") for case, method in jobs[len(done):]]
    if code != 0 or missing:
        runner.say(f"  bench {precision}: {why}")
    return done + missing


def _config_step(runner: Runner, run: ConfigRun, precision: str, cpu_check: bool, index: int,
                 timeout: float) -> list[Row]:
    name, config, epochs, extra = run
    run_dir = runner.tmp / f"run{index}"
    # Quoted: YAML reads a bare off as false.
    sets = [f"train.mixed_precision='{CONFIG_PRECISION[precision]}'", f"train.epochs={epochs}",
            "train.early_stopping=null", *extra]
    command = [sys.executable, "-m", "fmtrain", "fit", config, "--quiet", "--run-dir", str(run_dir),
               "--device", "cpu" if cpu_check else "gpu", *[arg for value in sets for arg in ("--set", value)]]
    runner.say(f"{name} · {precision}: fmtrain fit, {epochs} epochs (limit {timeout:.0f} s)")
    log = runner.tmp / f"step{index}.log"
    # A fresh plan cache: the run decides its plan and pays for deciding, as a first run does.
    code, seconds = runner.run(command, timeout, log, FMTRAIN_CACHE_DIR=str(runner.tmp / f"cache{index}"))
    row = Row(name, precision, "fmtrain fit", epochs=epochs, wall_seconds=seconds)
    if code != 0:
        row.error = runner.why(code, seconds, log)
    else:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        plan = metrics["compile"].get("plan") or {}
        row.samples_per_second = metrics["throughput"]["train_samples_per_second"]
        row.accuracy = metrics["final"].get("test", {}).get("accuracy")
        row.plan = (f"{'XLA' if plan.get('jit') else 'graph'}, {plan.get('steps_per_execution')}/call "
                    f"({plan.get('source')})")
        row.timed_seconds = metrics["timing"]["fit_seconds"]
        row.policy = metrics["precision"]
        environment = json.loads((run_dir / "environment.json").read_text())
        row.devices = ", ".join(environment.get("devices", []))
    done = row.error or f"{row.samples_per_second:,.0f} samples/s, {seconds:.1f} s wall ({row.policy})"
    runner.say(f"  {name} · {precision}: {done}")
    return [row]


# ----------------------------------------------------------------------------- the table


def table(rows: list[Row], heading: str) -> str:
    """One markdown table: every row with its ratios measured in this run."""
    speed = {(r.name, r.precision, r.method): r.samples_per_second for r in rows}
    lines = [heading, "",
             "| row | precision | method | samples/s | × plain | × tuned | bf16 ÷ float32 | accuracy | plan "
             "| timed | wall s | dtype policy (compute / variables) |",
             "|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|---|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.name} | {r.precision} | {r.method} | {r.error.replace('|', '/')} "
                         f"|  |  |  |  |  |  | {_num(r.wall_seconds, '.1f')} |  |")
            continue

        def ratio(other, r=r):
            base = speed.get(other)
            return f"{r.samples_per_second / base:.2f}" if base and r.samples_per_second else "–"

        bench_row = r.method in METHODS
        versus_plain = ratio((r.name, r.precision, "plain")) if bench_row else "–"
        versus_tuned = ratio((r.name, r.precision, "tuned")) if bench_row else "–"
        versus_f32 = ratio((r.name, "float32", r.method)) if r.precision == "bf16" else "–"
        timed = f"{r.epochs} ep, {r.timed_seconds:.2f} s" if r.timed_seconds is not None else "–"
        dtypes = f"{r.policy} ({r.compute_dtype} / {r.variable_dtype})" if r.compute_dtype else r.policy
        if r.devices:
            dtypes += f" on {r.devices}"
        lines.append(f"| {r.name} | {r.precision} | {r.method} | {r.samples_per_second:,.0f} | {versus_plain} "
                     f"| {versus_tuned} | {versus_f32} | {_num(r.accuracy, '.4f')} | {r.plan} | {timed} "
                     f"| {_num(r.wall_seconds, '.1f')} | {dtypes} |")
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _heading(info: dict, cpu_check: bool, min_seconds: float, seconds: float) -> str:
    if cpu_check:
        where = f"{CPU_CHECK_NOTE}: {os.cpu_count()} CPU cores, tiny sizes"
    else:
        where = info.get("nvidia_smi") or ", ".join(info["gpus"])
    retimed = f"a row whose timed epochs took under {min_seconds:g} s was timed again over more epochs"
    return (f"**fmtrain benchmark, {datetime.date.today().isoformat()}: {where}** — TensorFlow {info['tensorflow']} "
            f"(CUDA {info.get('cuda') or '–'}, cuDNN {info.get('cudnn') or '–'}), Keras {info['keras']}, "
            f"fmtrain {info['fmtrain']}, Python {info['python']}. bench.py rows: one process per precision, "
            f"{retimed}; config rows: one `fmtrain fit` each, fresh plan cache. {seconds:.0f} s in all.")


def _nvidia_smi() -> str:
    if not shutil.which("nvidia-smi"):
        return ""
    try:
        output = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    name, memory, driver = ([part.strip() for part in output.splitlines()[0].split(",")] + ["", "", ""])[:3] \
        if output.strip() else ("", "", "")
    return f"{name} ({memory}, driver {driver})" if name else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-check", action="store_true",
                        help=f"run the whole pipeline on the CPU at tiny sizes ({CPU_CHECK_NOTE})")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds for everything after the checks; each step's limit comes out of what is left")
    parser.add_argument("--min-seconds", type=float,
                        help="time a bench row again over more epochs when its timed epochs took less than this "
                        "(default 1.5; 0.05 with --cpu-check, which only runs that path)")
    parser.add_argument("--quick", action="store_true", help="bench.py's quarter-size data")
    parser.add_argument("--only", help="only the rows whose name contains this text (e.g. CNN)")
    parser.add_argument("--jobs", type=int, help="steps run at a time (default 1; 2 with --cpu-check)")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bench-group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.min_seconds is None:
        args.min_seconds = 0.05 if args.cpu_check else 1.5
    if args.probe:
        print(json.dumps(probe()))
        return 0
    if args.bench_group:
        bench_group(json.loads(args.bench_group))
        return 0

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout` stops us as Ctrl-C does: table first
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"), "PYTHONUNBUFFERED": "1"}
    if args.cpu_check:
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    with tempfile.TemporaryDirectory(prefix="fmtrain-gpu-") as tmp:
        runner = Runner(args.budget, env, Path(tmp), args.jobs or (2 if args.cpu_check else 1))
        log = runner.tmp / "probe.log"
        code, _ = runner.run([sys.executable, __file__, "--probe"], min(120.0, runner.left()), log)
        if code != 0:
            print(f"bench_gpu.py: TensorFlow did not start in {sys.executable}: "
                  f"{'timed out' if code is None else _last_line(log)}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        info = json.loads(log.read_text().strip().splitlines()[-1])
        if not info["gpus"] and not args.cpu_check:
            print(f"bench_gpu.py: TensorFlow {info['tensorflow']} in {sys.executable} sees no GPU (built with CUDA: "
                  f"{info['built_with_cuda']}); it needs a CUDA build of TensorFlow whose CUDA libraries load here "
                  "(or run --cpu-check)", file=sys.stderr)
            return EXIT_CANNOT_RUN
        info["nvidia_smi"] = "" if args.cpu_check else _nvidia_smi()
        runner.say(f"TensorFlow {info['tensorflow']}, GPUs: {info['gpus'] or 'none (CPU check)'}")
        rows = run_all(args, runner, args.cpu_check)
        heading = _heading(info, args.cpu_check, args.min_seconds, time.monotonic() - runner.started)
        print(table(rows, heading), flush=True)
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
