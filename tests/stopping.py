"""An engine callback the resume tests share: stop as a signal would, at a chosen global step."""

from __future__ import annotations

from fmtrain.engine.callbacks import Callback


class StopAt(Callback):
    """Ask the trainer to stop, as SIGINT or SIGTERM would, once it has trained ``global_step`` steps
    (it then finishes the current call and writes a checkpoint)."""

    def __init__(self, global_step: int, reason: str = "test"):
        self.global_step = global_step
        self.reason = reason

    def on_steps_end(self, epoch, step, logs):
        if self.trainer.global_step >= self.global_step:
            self.trainer.request_stop(self.reason)
