"""``fmtrain launch --workers N CONFIG [fit options]``: N local ``fmtrain fit`` workers of one
multi-worker run (``distribute.strategy: multi_worker``), each with its ``TF_CONFIG`` on free
localhost ports; their output prefixed with the worker index; the chief's exit code."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, run_action
from fmtrain.errors import TrainingFailed

STOP_AFTER_S = 5
"""How long the other workers get to end on their own after one died (a bad input fails every worker,
each with its own message), before they are asked to stop (SIGTERM). A synchronous step cannot finish
without every worker, so waiting longer only delays the end."""
KILL_AFTER_S = 5
"""How long a worker asked to stop gets before it is killed: one blocked in a collective with a dead
peer never returns to Python to handle SIGTERM."""


def register(app: typer.Typer) -> None:
    app.command("launch", cls=Command,
                context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(launch)


def launch(
    ctx: typer.Context,
    workers: Annotated[int, typer.Option("--workers", "-n", min=1, help="Worker processes to start.")] = 2,
    debug: Debug = False,
) -> None:
    """Run `fmtrain fit` on --workers local processes as one multi-worker run; every other argument
    (CONFIG, --set, --run-dir, --resume, …) goes to each `fit`. Worker 0 is the chief: only it writes
    the run directory."""

    def action() -> int:
        return run_workers(workers, list(ctx.args))

    run_action(action, debug)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_command(index: int, fit_args: list[str]) -> list[str]:
    """The command line of worker ``index`` (every worker runs the same one; TF_CONFIG tells them apart)."""
    return [sys.executable, "-m", "fmtrain", "fit", *fit_args, "--set", "distribute.strategy=multi_worker"]


def run_directory(fit_args: list[str]) -> tuple[Path, list[str]]:
    """The run directory the chief writes, read from ``fit_args`` as ``fmtrain fit`` parses them, and the
    arguments to give every worker: with ``--run-dir`` added when neither it nor ``--resume`` is there,
    so a failure can name the directory to resume.

    Raises:
        ConfigError: the config does not load (the one message, before any worker starts).
    """
    from fmtrain.cli import app
    from fmtrain.config import load_config
    from fmtrain.runs import default_run_path

    fit = typer.main.get_command(app).commands["fit"]
    params = fit.make_context("fit", list(fit_args), resilient_parsing=True).params
    given = params.get("resume") or params.get("run_dir")
    if given is not None or params.get("config") is None:  # fit itself explains a missing CONFIG
        return Path(given or "RUN_DIR"), fit_args
    overrides = [*(params.get("overrides") or []), "distribute.strategy=multi_worker"]
    cfg = load_config(Path(params["config"]), overrides)
    path = default_run_path(Path(params.get("runs_root") or "runs"), cfg.name)
    return path, [*fit_args, "--run-dir", str(path)]


def _relay(index: int, stream, out) -> None:
    for line in stream:
        out.write(f"[worker {index}] {line}")
        out.flush()


def run_workers(count: int, fit_args: list[str]) -> int:
    """Start the workers, relay their output, and return the chief's exit code.

    Raises:
        ConfigError: the config does not load.
        TrainingFailed: a worker failed; the others were ended within ``STOP_AFTER_S + KILL_AFTER_S``
            seconds. The message names the worker and the command that resumes the run.
    """
    run_dir, fit_args = run_directory(fit_args)
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(count)]}
    processes, relays = [], []
    for index in range(count):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        process = subprocess.Popen(worker_command(index, fit_args), env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        relay = threading.Thread(target=_relay, args=(index, process.stdout, sys.stdout), daemon=True)
        relay.start()
        processes.append(process)
        relays.append(relay)
    failed = _wait(processes)
    for relay in relays:
        relay.join(timeout=5)
    if failed is not None:
        index, code = failed
        died = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        saved = any((run_dir / "checkpoints").glob("step-*"))
        then = (f"continue from its last checkpoint: fmtrain launch --workers {count} --resume {run_dir}" if saved
                else "no checkpoint was written, so start it again")
        raise TrainingFailed(f"worker {index} {died}; the other workers were stopped; {then}")
    return processes[0].returncode


def _wait(processes) -> tuple[int, int] | None:
    """Wait for every worker; when one fails, give the others ``STOP_AFTER_S`` seconds, then stop them
    (SIGTERM, then SIGKILL after ``KILL_AFTER_S``). Returns the first failed worker and its exit code, or None."""
    failed = None
    deadline = None
    while None in [p.poll() for p in processes]:  # poll every one: poll() is what sets returncode
        if failed is None:
            failed = next(((i, p.returncode) for i, p in enumerate(processes) if p.returncode not in (None, 0)), None)
            if failed is not None:
                deadline = time.monotonic() + STOP_AFTER_S
        if deadline is not None and time.monotonic() > deadline:
            for p in processes:
                if p.poll() is None:
                    p.terminate()
            kill_at = time.monotonic() + KILL_AFTER_S
            for p in processes:
                try:
                    p.wait(timeout=max(0.0, kill_at - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        time.sleep(0.2)
    if failed is None:
        failed = next(((i, p.returncode) for i, p in enumerate(processes) if p.returncode != 0), None)
    return failed
