"""``fmtrain launch --workers N CONFIG [fit options]``: N local ``fmtrain fit`` workers of one
multi-worker run (``distribute.strategy: multi_worker``), each with its ``TF_CONFIG`` on free
localhost ports; their output prefixed with the worker index; the chief's exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Annotated

import typer

from fmtrain.cli_kit import Command, Debug, run_action
from fmtrain.errors import TrainingFailed

STOP_AFTER_S = 20
"""How long the other workers get to end on their own after one died, before they are stopped."""


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


def _relay(index: int, stream, out) -> None:
    for line in stream:
        out.write(f"[worker {index}] {line}")
        out.flush()


def run_workers(count: int, fit_args: list[str]) -> int:
    """Start the workers, relay their output, and return the chief's exit code.

    Raises:
        TrainingFailed: a worker failed; the others were ended within ``STOP_AFTER_S`` seconds.
    """
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(count)]}
    command = [sys.executable, "-m", "fmtrain", "fit", *fit_args, "--set", "distribute.strategy=multi_worker"]
    processes, relays = [], []
    for index in range(count):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        relay = threading.Thread(target=_relay, args=(index, process.stdout, sys.stdout), daemon=True)
        relay.start()
        processes.append(process)
        relays.append(relay)
    failed = _wait(processes)
    for relay in relays:
        relay.join(timeout=5)
    if failed is not None:
        index, code = failed
        raise TrainingFailed(f"worker {index} exited with code {code}; the other workers were stopped. Continue "
                             f"the run from its last checkpoint: fmtrain launch --workers {count} --resume RUN_DIR")
    return processes[0].returncode


def _wait(processes) -> tuple[int, int] | None:
    """Wait for every worker; when one fails, give the others ``STOP_AFTER_S`` seconds, then stop them.
    Returns the first failed worker and its exit code, or None."""
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
            for p in processes:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        time.sleep(0.2)
    if failed is None:
        failed = next(((i, p.returncode) for i, p in enumerate(processes) if p.returncode != 0), None)
    return failed
