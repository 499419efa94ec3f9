"""How many steps each compiled call runs, and (under ``jit_compile: auto``) whether XLA is used.

The call size depends only on the batch size, the epoch and the checkpoint cadence, never on
timing, so the same config gives the same calls (and traces) every run. The jit choice comes,
in this order, from the config, a rule (short runs, convolutions on CPU), the plan cache
(``plan_cache.py``), or a timed trial of both candidates.

Pure Python: the trainer asks :meth:`CallPlan.next_call` before each call and reports the
call's duration to :meth:`CallPlan.record`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# With steps_per_execution: auto, calls run about this many examples (at most an epoch, or the
# checkpoint cadence), on a divisor of the epoch where one is near, so every call has one shape.
START_EXAMPLES_PER_CALL = 8192

Source = Literal["config", "rule", "cache", "measured"]


@dataclass(frozen=True)
class JitDecision:
    """A jit choice known before training, and why."""

    jit: bool
    source: Source
    why: str
    per_step: dict[bool, float] = field(default_factory=dict)
    """Seconds per step of each candidate, when the decision came from a measurement."""


@dataclass(frozen=True)
class PlanRecord:
    """The plan a run used, for ``metrics.json``."""

    jit: bool
    why: str
    steps_per_execution: int
    source: Source
    candidates: tuple[bool, ...]
    per_step: dict[bool, float] = field(default_factory=dict)


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

    Args:
        known: under ``jit_policy="auto"``, a jit choice made before training (rule or cache):
            no trial is run. Runs shorter than four calls never use XLA.
        config_why: why a jit choice given as True or False was made (metrics.json).
            Without one, ``jit_policy="auto"`` compiles each candidate and times it on one
            steady call of real training steps; the fastest per step wins for the rest of the run.
    """

    def __init__(self, *, steps_per_epoch: int, batch_size: int, total_steps: int,
                 steps_per_execution: int | str, jit_policy: bool | str, max_chunk: int | None = None,
                 known: JitDecision | None = None, config_why: str = "train.jit_compile"):
        self.steps_per_epoch = steps_per_epoch
        self.max_chunk = max_chunk or steps_per_epoch
        if steps_per_execution == "auto":
            self.chunk = pick_chunk(steps_per_epoch, min(self.max_chunk, max(1, START_EXAMPLES_PER_CALL // batch_size)))
        else:
            self.chunk = min(int(steps_per_execution), steps_per_epoch, self.max_chunk)
        self.calls: dict[bool, int] = {}
        self.per_step: dict[bool, float] = {}
        if jit_policy != "auto":
            self.candidates, self.source, self._why = [jit_policy is not False], "config", config_why
        elif total_steps < 4 * self.chunk:
            # Too short to measure: skip XLA, whose compile time then dominates (e.g. --smoke).
            self.candidates, self.source = [False], "rule"
            self._why = "run too short (under 4 calls) to pay for compiling with XLA"
        elif known is not None:
            self.candidates, self.source, self._why = [known.jit], known.source, known.why
            self.per_step = dict(known.per_step)
        else:
            self.candidates, self.source, self._why = [True, False], "measured", ""
        self.trial = len(self.candidates) > 1
        """Whether this plan times the candidates itself."""
        self.dropped: str | None = None

    @property
    def decided(self) -> bool:
        return len(self.candidates) == 1 or all(c in self.per_step for c in self.candidates)

    @property
    def jit(self) -> bool:
        """The jit choice for the next call."""
        if len(self.candidates) == 1:
            return self.candidates[0]
        if self.decided:
            return min(self.candidates, key=lambda c: self.per_step[c])
        return next(c for c in self.candidates if c not in self.per_step)

    @property
    def why(self) -> str:
        if self.source != "measured" or self._why:
            return self._why
        if self.decided and len(self.per_step) == 2:
            return (f"timed: XLA {self.per_step[True] * 1e3:.3g} ms/step, "
                    f"graph {self.per_step[False] * 1e3:.3g} ms/step")
        return "not decided: the run ended before both candidates were timed"

    @property
    def measured(self) -> bool:
        """Whether this plan decided the jit choice itself, by timing or a failed compile (worth caching)."""
        return self.trial and self.decided

    def next_call(self, step: int) -> tuple[int, bool]:
        """Steps for the call starting at ``step`` of the epoch: calls stay on a grid of ``chunk``
        steps, so a resumed run makes exactly the calls an uninterrupted one makes."""
        return min(self.chunk - step % self.chunk, self.steps_per_epoch - step), self.jit

    def record(self, jit: bool, steps: int, seconds: float) -> None:
        """Report a finished call; the first call of each candidate includes compilation and is not timed.
        Only an undecided plan uses the time: it never changes the call size."""
        self.calls[jit] = self.calls.get(jit, 0) + 1
        if (not self.decided and self.calls[jit] >= 2 and jit not in self.per_step and steps == self.chunk):
            self.per_step[jit] = seconds / steps

    def drop(self, jit: bool, why: str) -> None:
        """A candidate failed to compile; never use it."""
        self.candidates = [c for c in self.candidates if c != jit] or [False]
        self.per_step.pop(jit, None)
        self._why = why
        self.dropped = why

    def record_of(self) -> PlanRecord:
        """What was chosen and why."""
        return PlanRecord(jit=self.jit, why=self.why, steps_per_execution=self.chunk, source=self.source,
                          candidates=tuple(self.candidates), per_step=dict(self.per_step))


def has_convolutions(model) -> bool:
    """Whether any layer of a Keras model, nested models included, is a convolution (Conv1D-3D,
    transposed, depthwise, separable, ConvLSTM): on CPUs XLA makes these 2-3x slower."""
    layers = model._flatten_layers(include_self=False, recursive=True)
    return any(cls.__name__.startswith(_CONV_CLASS_PREFIXES) for layer in layers for cls in type(layer).__mro__)


_CONV_CLASS_PREFIXES = ("Conv", "BaseConv", "DepthwiseConv", "BaseDepthwiseConv", "SeparableConv", "BaseSeparableConv")
