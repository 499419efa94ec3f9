"""How many steps each compiled call runs, and (under ``jit_compile: auto``) whether XLA is
used — decided by measuring the first calls of the run, not by guessing.

Pure Python: the trainer asks :meth:`CallPlan.next_call` before each call and reports the
call's duration to :meth:`CallPlan.record`.
"""

from __future__ import annotations

# With steps_per_execution: auto, calls start at about this many examples (at most an epoch, or
# the checkpoint cadence); when a steady call takes longer than SLOW_CALL_SECONDS, calls are
# resized once to at most TARGET_CALL_SECONDS (preferring a divisor of the epoch, which may make
# them up to 4x shorter) so progress stays live. Deterministic runs never resize.
START_EXAMPLES_PER_CALL = 8192
SLOW_CALL_SECONDS = 1.0
TARGET_CALL_SECONDS = 0.5


def pick_chunk(steps: int, target: int) -> int:
    """Steps per call near ``target``; prefer a divisor of ``steps`` (down to a quarter of the
    target) so every call has one shape and compiles once."""
    target = max(1, min(steps, target))
    for candidate in range(target, max(1, target // 4) - 1, -1):
        if steps % candidate == 0:
            return candidate
    return target


class CallPlan:
    """Chooses (steps, jit) for each compiled training call.

    With several jit candidates, each is compiled and then timed on one steady call of real
    training steps; the fastest per step wins for the rest of the run.
    """

    def __init__(self, *, steps_per_epoch: int, batch_size: int, total_steps: int,
                 steps_per_execution: int | str, jit_policy: bool | str, adaptive: bool = True,
                 max_chunk: int | None = None):
        self.steps_per_epoch = steps_per_epoch
        self.max_chunk = max_chunk or steps_per_epoch
        self.auto_chunk = steps_per_execution == "auto" and adaptive
        if steps_per_execution == "auto":
            self.chunk = pick_chunk(steps_per_epoch, min(self.max_chunk, max(1, START_EXAMPLES_PER_CALL // batch_size)))
        else:
            self.chunk = min(int(steps_per_execution), steps_per_epoch, self.max_chunk)
        if jit_policy == "auto":
            # Too short to measure: skip XLA, whose compile time then dominates (e.g. --smoke).
            self.candidates = [True, False] if total_steps >= 4 * self.chunk else [False]
        else:
            self.candidates = [jit_policy is not False]
        self.calls: dict[bool, int] = {}
        self.per_step: dict[bool, float] = {}
        self.resized = False

    @property
    def decided(self) -> bool:
        return len(self.candidates) == 1 or all(c in self.per_step for c in self.candidates)

    @property
    def jit(self) -> bool:
        """The jit choice for the next call."""
        if self.decided:
            return min(self.candidates, key=lambda c: self.per_step.get(c, 0.0))
        return next(c for c in self.candidates if c not in self.per_step)

    def next_call(self, step: int) -> tuple[int, bool]:
        """Steps for the call starting at ``step`` of the epoch: calls stay on a grid of ``chunk``
        steps, so a resumed run makes exactly the calls an uninterrupted one makes."""
        return min(self.chunk - step % self.chunk, self.steps_per_epoch - step), self.jit

    def record(self, jit: bool, steps: int, seconds: float) -> None:
        """Report a finished call; the first call of each candidate includes compilation and is not timed."""
        self.calls[jit] = self.calls.get(jit, 0) + 1
        if self.calls[jit] >= 2 and jit not in self.per_step and steps == self.chunk:
            self.per_step[jit] = seconds / steps
        if self.decided and self.auto_chunk and not self.resized and jit in self.per_step:
            if self.per_step[jit] * self.chunk > SLOW_CALL_SECONDS:
                target = min(self.max_chunk, int(TARGET_CALL_SECONDS / self.per_step[jit]))
                self.chunk = pick_chunk(self.steps_per_epoch, target)
                self.resized = True

    def drop(self, jit: bool) -> None:
        """A candidate failed to compile; never use it."""
        self.candidates = [c for c in self.candidates if c != jit] or [False]
