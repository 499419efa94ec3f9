"""benchmarks/gpu.sh, the prepared command for a lent GPU machine, works the first time: it stops
at once with one line (exit 3) where TensorFlow or the GPU is missing, and its whole pipeline runs
on the CPU (``--cpu-check``) with every row in the table and the bf16 rows under mixed_bfloat16."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


bench_gpu = _module("bench_gpu")


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env}, cwd=ROOT)


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.fixture
def python_without_tensorflow(tmp_path):
    """A PATH whose python3 is this interpreter without site-packages: no TensorFlow, no pip."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "python3"
    stub.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    stub.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FMTRAIN_PYTHON": "python3"}


@pytest.mark.parametrize("wheels", [[], ["tqdm-4.0.0-py3-none-any.whl"]], ids=["no wheels", "no tensorflow wheel"])
def test_without_tensorflow_it_says_what_is_missing_in_one_line(python_without_tensorflow, tmp_path, wheels):
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in wheels:
        (folder / name).write_bytes(b"not used")
    started = time.perf_counter()
    result = _run([], {**python_without_tensorflow, "FMTRAIN_WHEELS": str(folder)}, timeout=30)
    seconds = time.perf_counter() - started
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot import: tensorflow, keras, pydantic" in lines[0]
    assert f"{folder}/ holds no tensorflow wheel" in lines[0] and "Nothing was run" in lines[0]
    assert seconds < 5, f"took {seconds:.1f} s"


def test_wheels_that_do_not_install_stop_it_with_exit_3(python_without_tensorflow, tmp_path):
    """A tensorflow wheel is there, but pip cannot install it (here: this python3 has no pip)."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "tensorflow-2.99.0-cp312-cp312-manylinux_2_17_x86_64.whl").write_bytes(b"not a wheel")
    result = _run([], {**python_without_tensorflow, "FMTRAIN_WHEELS": str(folder),
                       "FMTRAIN_SITE": str(tmp_path / "site")}, timeout=30)
    assert result.returncode == 3, result.stderr
    assert "installing 1 wheels" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"gpu.sh: pip could not install the wheels in {folder}/ (above). Nothing was run.")
    assert result.stdout == ""


@pytest.mark.tf
@pytest.mark.slow
def test_tensorflow_without_a_gpu_stops_it_with_exit_3():
    result = _run([], {"FMTRAIN_PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "-1"}, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "sees no GPU" in result.stderr.strip().splitlines()[-1]
    assert result.stdout == ""


def test_the_table_holds_ratios_and_failed_rows():
    Row = bench_gpu.Row
    rows = [Row("MLP", "float32", "plain", samples_per_second=100.0, accuracy=0.5, plan="graph", epochs=2,
                timed_seconds=1.0, wall_seconds=3.0, policy="float32", compute_dtype="float32",
                variable_dtype="float32"),
            Row("MLP", "float32", "tuned", samples_per_second=200.0),
            Row("MLP", "bf16", "plain", samples_per_second=150.0),
            Row("MLP", "bf16", "tuned", error="not run (exit 1: ValueError: a | b)")]
    lines = bench_gpu.table(rows, "heading").splitlines()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert all(len(row) == len(cells[0]) for row in cells), "every line has the header's columns"
    assert cells[2][3:7] == ["100", "1.00", "0.50", "–"]
    assert cells[4][3:7] == ["150", "1.00", "–", "1.50"]  # bf16 ÷ float32 for the same method
    assert "not run (exit 1: ValueError: a / b)" in cells[5]


def test_a_step_that_runs_out_of_time_keeps_its_finished_rows(tmp_path):
    runner = bench_gpu.Runner(60, dict(os.environ), tmp_path)
    started = time.perf_counter()
    code, _ = runner.run(["sleep", "30"], 0.5, tmp_path / "sleep.log")
    assert code is None and time.perf_counter() - started < 5

    finished = bench_gpu.Row("A", "bf16", "plain", samples_per_second=1.0, policy="mixed_bfloat16")

    def one_row_then_time_out(command, timeout, log, **env):
        (tmp_path / "bench-bf16.jsonl").write_text(json.dumps(bench_gpu.asdict(finished)) + "\n")
        return None, 12.0

    runner.run = one_row_then_time_out
    rows = bench_gpu._bench_step(runner, [{"name": "A"}, {"name": "B"}], "bf16", 0.0, 0, 30.0)
    assert rows[0] == finished
    assert [(r.name, r.method, r.error) for r in rows[1:]] == [
        ("A", "tuned", "not run (timed out after 12 s)"), ("A", "fmtrain", "not run (timed out after 12 s)"),
        ("B", "plain", "not run (timed out after 12 s)"), ("B", "tuned", "not run (timed out after 12 s)"),
        ("B", "fmtrain", "not run (timed out after 12 s)")]


@pytest.mark.tf
@pytest.mark.slow
def test_cpu_check_runs_every_row_and_bf16_rows_compute_in_bfloat16():
    started = time.perf_counter()
    result = _run(["--cpu-check"], {"FMTRAIN_PYTHON": sys.executable}, timeout=400)
    print(f"gpu.sh --cpu-check took {time.perf_counter() - started:.0f} s")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout
    heading, _, header, _, *lines = result.stdout.strip().splitlines()
    assert bench_gpu.CPU_CHECK_NOTE in heading
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    table = {}
    for line in lines:
        row = dict(zip(columns, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        table[row["row"], row["precision"], row["method"]] = row
    names = [case["name"] for case in _module("bench").cases(False)]
    expected = [(name, precision, method) for precision in ("float32", "bf16") for name in names
                for method in ("plain", "tuned", "fmtrain")]
    expected += [(f"{model} ({config}.yaml)", precision, "fmtrain fit")
                 for model, config in [("CNN", "mnist_cnn"), ("ViT", "vit_small"), ("text", "text_transformer")]
                 for precision in ("float32", "bf16")]
    assert sorted(table) == sorted(expected)
    for (_, precision, method), row in table.items():
        assert float(row["samples/s"].replace(",", "")) > 0, row
        if method == "fmtrain fit":  # what metrics.json says the run used
            assert row["dtype policy (compute / variables)"] == {"float32": "float32", "bf16": "mixed_bfloat16"}[
                precision] + " on CPU:0", row
        else:  # what the model's first layer computed in, and kept its weights in
            assert row["dtype policy (compute / variables)"] == {
                "float32": "float32 (float32 / float32)", "bf16": "mixed_bfloat16 (bfloat16 / float32)"}[precision]
        if precision == "bf16":
            assert float(row["bf16 ÷ float32"]) > 0, row
        epochs, seconds = row["timed"].removesuffix(" s").split(" ep, ")
        if method != "fmtrain fit" and float(seconds) < 0.05:  # --cpu-check's --min-seconds
            assert int(epochs) > 1, f"a row timed under 0.05 s is timed again over more epochs: {row}"
    retimed = [row for row in table.values() if row["method"] != "fmtrain fit" and not row["timed"].startswith("1 ep")]
    print(f"{len(retimed)} bench rows re-timed over more epochs")


@pytest.mark.parametrize("error, code", [("", 0), ("timed out after 9 s", 1)])
def test_the_exit_status_says_whether_every_row_ran(monkeypatch, capsys, error, code):
    """0 when every row ran, 1 when the table holds a failed or timed-out row; the table is printed either way."""
    probe = {"tensorflow": "2.x", "keras": "3.x", "fmtrain": "0", "python": "3", "built_with_cuda": False,
             "cuda": None, "cudnn": None, "gpus": []}

    def fake_probe(self, command, timeout, log, **env):
        log.write_text(json.dumps(probe) + "\n")
        return 0, 0.1

    row = bench_gpu.Row("A", "float32", "plain", samples_per_second=10.0, error=error)
    monkeypatch.setattr(bench_gpu.Runner, "run", fake_probe)
    monkeypatch.setattr(bench_gpu, "run_all", lambda args, runner, cpu_check: [row])
    monkeypatch.setattr(sys, "argv", ["bench_gpu.py", "--cpu-check"])
    monkeypatch.setattr(bench_gpu.signal, "signal", lambda *args: None)  # keep pytest's own SIGTERM handling
    assert bench_gpu.main() == code
    out = capsys.readouterr().out
    assert bench_gpu.CPU_CHECK_NOTE in out.splitlines()[0]
    assert out.strip().splitlines()[-1].startswith("| A | float32 | plain | ")


def test_each_step_gets_its_share_of_the_time_left(monkeypatch, tmp_path):
    """The bench steps weigh 6, each config run 1: every step's limit is its share of what is left
    when it starts, never more than what is left, so the whole ends within --budget."""
    seen = []

    def step(*args):
        runner, timeout = args[0], args[-1]
        seen.append((timeout, runner.left()))
        time.sleep(0.2)
        return []

    monkeypatch.setattr(bench_gpu, "_bench_step", step)
    monkeypatch.setattr(bench_gpu, "_config_step", step)
    runner = bench_gpu.Runner(9.0, {}, tmp_path)
    args = type("Args", (), {"quick": False, "only": None, "min_seconds": 0.0})()
    bench_gpu.run_all(args, runner, cpu_check=True)
    assert len(seen) == 2 + 6
    assert seen[0][0] == pytest.approx(seen[0][1] * 6 / 18, abs=0.1)
    assert all(timeout <= left + 0.01 for timeout, left in seen)
    assert seen[-1][0] == pytest.approx(seen[-1][1], abs=0.1), "the last step may use all that is left"


def test_the_limit_leaves_the_steps_at_least_a_minute(tmp_path):
    """FMTRAIN_GPU_SECONDS bounds the whole command: 30 s are kept back, and less than a minute left
    for the steps stops it before anything runs."""
    result = _run([], {"FMTRAIN_PYTHON": sys.executable, "FMTRAIN_GPU_SECONDS": "80"}, timeout=30)
    assert result.returncode == 3, result.stderr
    line = result.stderr.strip()
    assert line.startswith("gpu.sh: FMTRAIN_GPU_SECONDS=80 leaves the steps ") and line.endswith(
        " s (30 s are kept back); they need at least 60. Nothing was run."), line
    assert int(line.split("leaves the steps ")[1].split()[0]) in (49, 50)


def test_the_heading_names_the_gpu_as_nvidia_smi_does(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 143771 MiB, 580.159.03'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert bench_gpu._nvidia_smi() == "NVIDIA H200 (143771 MiB, driver 580.159.03)"
    info = {"tensorflow": "2.x", "keras": "3.x", "fmtrain": "0", "python": "3", "nvidia_smi": bench_gpu._nvidia_smi()}
    heading = bench_gpu._heading(info, cpu_check=False, min_seconds=1.5, seconds=100)
    assert ": NVIDIA H200 (143771 MiB, driver 580.159.03)**" in heading
    assert bench_gpu.CPU_CHECK_NOTE not in heading


def test_a_step_that_breaks_costs_only_its_own_rows(monkeypatch, tmp_path):
    def bench_step(runner, cases, precision, min_seconds, index, timeout):
        return [bench_gpu.Row("A", precision, "plain", samples_per_second=1.0)]

    def config_step(*args):
        raise KeyError("throughput")

    monkeypatch.setattr(bench_gpu, "_bench_step", bench_step)
    monkeypatch.setattr(bench_gpu, "_config_step", config_step)
    args = type("Args", (), {"quick": False, "only": "vit", "min_seconds": 0.0})()
    rows = bench_gpu.run_all(args, bench_gpu.Runner(60, {}, tmp_path), cpu_check=True)
    assert [(r.name, r.precision, r.method, r.error) for r in rows] == [
        ("ViT (vit_small.yaml)", "float32", "fmtrain fit", "KeyError: 'throughput'"),
        ("ViT (vit_small.yaml)", "bf16", "fmtrain fit", "KeyError: 'throughput'")]
    args.only = None
    rows = bench_gpu.run_all(args, bench_gpu.Runner(60, {}, tmp_path), cpu_check=True)
    assert [r.error for r in rows[:2]] == ["", ""] and all(r.error for r in rows[2:]) and len(rows) == 8
