"""Callbacks: everything that happens around the compiled steps (progress, early stopping).

The trainer calls these between compiled calls; none of them runs inside the graph.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from fmtrain.errors import ConfigError
from fmtrain.registry import did_you_mean


class Callback:
    """Hooks the trainer calls; ``trainer`` is set before training starts."""

    trainer: Any = None

    def on_train_begin(self, plan: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, steps: int) -> None: ...
    def on_steps_end(self, epoch: int, step: int, logs: dict[str, float]) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None: ...
    def on_train_end(self, history: list[dict[str, float]]) -> None: ...
    def on_interrupt(self, epoch: int, step: int) -> None: ...


def format_logs(logs: dict[str, float], skip: tuple[str, ...] = ("lr", "seconds", "epoch")) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k not in skip)


class ProgressCallback(Callback):
    """Live rich progress bar on a terminal; one plain line per epoch otherwise."""

    def __init__(self, console=None, live: bool | None = None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self._progress = None
        self._task = None
        self._epochs = 0
        self._started = 0.0

    def on_train_begin(self, plan: dict) -> None:
        self._epochs = plan["epochs"]
        self._started = time.perf_counter()
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[logs]}"),
                console=self.console, transient=True,
            )
            self._progress.start()

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(f"epoch {epoch + 1}/{self._epochs}", total=steps, logs="")

    def on_steps_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, logs=format_logs(logs))

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        width = len(str(self._epochs))
        line = f"epoch {epoch + 1:>{width}}/{self._epochs}  {format_logs(logs)}  ({logs.get('seconds', 0):.1f}s)"
        if self._progress is not None:
            self._progress.console.print(line, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the best weights."""

    def __init__(self, monitor: str, patience: int, min_delta: float, mode: str, restore_best_weights: bool):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.sign = monitor_sign(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best = math.inf
        self.best_epoch: int | None = None
        self.best_weights = None
        self.wait = 0
        self.stopped_early = False

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ConfigError(
                f"train.early_stopping.monitor: '{self.monitor}' is not logged{did_you_mean(self.monitor, logs)}; "
                f"logged: {', '.join(k for k in logs if k not in ('lr', 'seconds'))}"
            )
        value = self.sign * logs[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.trainer.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_early = True
            self.trainer.stop_training = True

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch != len(history) - 1:
            self.trainer.model.set_weights(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        # The best weights themselves are not in the checkpoint: after a resume, restoring
        # falls back to the best epoch seen since.
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights = None


def monitor_sign(monitor: str, mode: str) -> float:
    """+1 when lower is better, -1 when higher is (mode auto: by the name)."""
    if mode == "auto":
        mode = "max" if any(w in monitor for w in ("acc", "auc", "f1", "precision", "recall")) else "min"
    return 1.0 if mode == "min" else -1.0


class CheckpointCallback(Callback):
    """Saves resumable checkpoints every N epochs and/or steps, on interrupt, and keeps the best."""

    def __init__(self, manager, *, every_epochs: int | None, every_steps: int | None, monitor: str, mode: str,
                 config_hash: str):
        self.manager = manager
        self.every_epochs, self.every_steps = every_epochs, every_steps
        self.monitor, self.sign = monitor, monitor_sign(monitor, mode)
        self.config_hash = config_hash
        self.last_saved_step = 0
        self.steps_per_epoch = 0
        self.saved: list = []

    def _save(self, score: float | None = None) -> None:
        snapshot = self.trainer.snapshot(self.config_hash)
        self.saved.append(self.manager.save(snapshot, score))
        self.last_saved_step = snapshot.state.global_step

    def on_train_begin(self, plan: dict) -> None:
        self.last_saved_step = self.trainer.global_step
        self.steps_per_epoch = plan["steps"]

    def on_steps_end(self, epoch: int, step: int, logs: dict[str, float]) -> None:
        # At an epoch's last step, on_epoch_end saves instead (with the validation score).
        due = self.every_steps and self.trainer.global_step - self.last_saved_step >= self.every_steps
        if due and step < self.steps_per_epoch:
            self._save()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        due_by_epoch = self.every_epochs and (epoch + 1) % self.every_epochs == 0
        due_by_step = self.every_steps and self.trainer.global_step - self.last_saved_step >= self.every_steps
        if due_by_epoch or due_by_step:
            value = logs.get(self.monitor)
            self._save(self.sign * value if value is not None else None)

    def on_interrupt(self, epoch: int, step: int) -> None:
        if self.trainer.global_step != self.last_saved_step:
            self._save()
