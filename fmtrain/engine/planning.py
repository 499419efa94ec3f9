"""How many steps each compiled call runs, and (under ``jit_compile: auto``) whether XLA is used.

The call size depends only on the batch size, the epoch and the checkpoint cadence, never on
timing, so the same config gives the same calls (and traces) every run. The jit choice comes,
in this order, from the config, a rule (short runs, convolutions on CPU), the plan cache
(``plan_cache.py``), or a bounded trial: the plain graph runs first (its first call is the
trace, its second the per-step time), XLA's compile is estimated from that, and XLA is tried
only when the estimate is at most :data:`TRIAL_BUDGET` of the run's expected training time.

Pure Python: the trainer asks :meth:`CallPlan.next_call` before each call and reports the
call's duration to :meth:`CallPlan.record`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# With steps_per_execution: auto, calls run about this many examples (at most an epoch, or the
# checkpoint cadence), on a divisor of the epoch where one is near, so every call has one shape.
START_EXAMPLES_PER_CALL = 8192

# The most a trial of XLA may cost: this fraction of the run's expected training time.
TRIAL_BUDGET = 0.10
# Estimated XLA compile seconds per second of the plain graph's first-call overhead (trace and
# graph optimisation), per call shape. Measured on a loaded 2-core CPU: XLA's first call cost
# 1.7x (MLP, batch 32), 2.7x (MLP, batch 256) and 3.5x (2-block text transformer) the graph's;
# 4 errs towards not trying, so a trial that runs stays within its budget.
XLA_COMPILE_PER_TRACE = 4.0

Source = Literal["config", "rule", "cache", "measured"]


@dataclass(frozen=True)
class GraphTiming:
    """The plain graph's cost, from its first two calls: what the trial's budget is judged on."""

    overhead: float
    """Seconds the first call took beyond its steps at the steady rate: tracing and graph optimisation."""
    per_step: float
    """Steady seconds per step."""


@dataclass(frozen=True)
class TrialBudget:
    """Whether XLA may be tried in a run, and the numbers that said so."""

    compile_estimate: float
    """Seconds XLA's compile is expected to take (every call shape of the run)."""
    run_estimate: float
    """Seconds the run is expected to train on the plain graph."""
    budget: float
    """The fraction of ``run_estimate`` a trial may cost."""

    @property
    def allows(self) -> bool:
        return self.compile_estimate <= self.budget * self.run_estimate

    def describe(self) -> str:
        sign = "≤" if self.allows else ">"
        return (f"est. compile {self.compile_estimate:.2g} s {sign} {self.budget:.0%} "
                f"of the run's est. {self.run_estimate:.3g} s")


def trial_budget(timing: GraphTiming, *, total_steps: int, shapes: int, budget: float) -> TrialBudget:
    """The budget check: XLA's compile is estimated as :data:`XLA_COMPILE_PER_TRACE` times the
    graph's first-call overhead for each call shape; the run as the graph's per-step time times
    its steps.

    Args:
        timing: the plain graph's first-call overhead and per-step time.
        total_steps: steps this run trains.
        shapes: distinct call sizes the run compiles (2 where the epoch ends on a shorter call).
        budget: the fraction of the run a trial may cost.

    Returns:
        The estimates and whether they allow the trial.
    """
    return TrialBudget(compile_estimate=XLA_COMPILE_PER_TRACE * timing.overhead * shapes,
                       run_estimate=timing.per_step * total_steps, budget=budget)


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
        timing: the plain graph's timing cached by an earlier run with the same key: the budget
            check uses it instead of this run's, so identical runs make the same choice.

    Without ``known``, ``jit_policy="auto"`` runs a bounded trial: the plain graph first (its
    first call traces, its second is timed), then XLA only when :func:`trial_budget` allows it,
    timed on one steady call of real training steps; the faster per step wins for the rest of
    the run. A run that does not try XLA says why and decides nothing worth caching.
    """

    def __init__(self, *, steps_per_epoch: int, batch_size: int, total_steps: int,
                 steps_per_execution: int | str, jit_policy: bool | str, max_chunk: int | None = None,
                 known: JitDecision | None = None, config_why: str = "train.jit_compile",
                 timing: GraphTiming | None = None):
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.max_chunk = max_chunk or steps_per_epoch
        if steps_per_execution == "auto":
            self.chunk = pick_chunk(steps_per_epoch, min(self.max_chunk, max(1, START_EXAMPLES_PER_CALL // batch_size)))
        else:
            self.chunk = min(int(steps_per_execution), steps_per_epoch, self.max_chunk)
        self.calls: dict[bool, int] = {}
        self.per_step: dict[bool, float] = {}
        self._first_call: dict[bool, tuple[int, float]] = {}
        self.timing: GraphTiming | None = timing
        """The plain graph's timing the budget was (or will be) judged on."""
        self.timing_cached = timing is not None
        self.budget: TrialBudget | None = None
        """The trial's budget check, once made."""
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
            # The plain graph first: its calls are training the run needs anyway, and they
            # price XLA's compile before it is paid.
            self.candidates, self.source, self._why = [False, True], "measured", ""
        self.trial = len(self.candidates) > 1
        """Whether this plan times the candidates itself."""
        self.dropped: str | None = None
        if self.trial and timing is not None:
            self._judge(timing)

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
    def skipped(self) -> bool:
        """Whether the budget kept XLA from being tried."""
        return self.budget is not None and not self.budget.allows

    @property
    def why(self) -> str:
        if self.skipped:
            cached = " (graph timing cached by an earlier run)" if self.timing_cached else ""
            return (f"XLA not tried: {self.budget.describe()} "
                    f"(graph {self.timing.per_step * 1e3:.3g} ms/step × {self.total_steps} steps){cached}")
        if self.source != "measured" or self.dropped:
            return self._why
        if self.decided and len(self.per_step) == 2:
            budget = f"; {self.budget.describe()}" if self.budget else ""
            compiled = self._first_call.get(True)
            paid = (f"; XLA's compile took {compiled[1] - self.per_step[True] * compiled[0]:.2g} s"
                    if compiled else "")
            return (f"timed: XLA {self.per_step[True] * 1e3:.3g} ms/step, "
                    f"graph {self.per_step[False] * 1e3:.3g} ms/step{budget}{paid}")
        return "not decided: the run ended before both candidates were timed"

    @property
    def measured(self) -> bool:
        """Whether this plan decided the jit choice itself, by timing or a failed compile (worth caching).
        A run whose budget kept XLA untried decided nothing: a longer run may still try it."""
        return self.trial and self.decided and not self.skipped

    @property
    def timing_measured(self) -> GraphTiming | None:
        """The graph's timing this run measured and judged the budget on (worth caching), if any."""
        return self.timing if self.budget is not None and not self.timing_cached else None

    def next_call(self, step: int) -> tuple[int, bool]:
        """Steps for the call starting at ``step`` of the epoch: calls stay on a grid of ``chunk``
        steps, so a resumed run makes exactly the calls an uninterrupted one makes."""
        return min(self.chunk - step % self.chunk, self.steps_per_epoch - step), self.jit

    def record(self, jit: bool, steps: int, seconds: float) -> None:
        """Report a finished call; the first call of each candidate includes compilation and is not timed.
        Only an undecided plan uses the time: it never changes the call size."""
        self.calls[jit] = self.calls.get(jit, 0) + 1
        self._first_call.setdefault(jit, (steps, seconds))
        if (not self.decided and self.calls[jit] >= 2 and jit not in self.per_step and steps == self.chunk):
            self.per_step[jit] = seconds / steps
            if jit is False and self.budget is None:
                first_steps, first_seconds = self._first_call[False]
                per_step = seconds / steps
                self._judge(GraphTiming(max(0.0, first_seconds - per_step * first_steps), per_step))

    def _judge(self, timing: GraphTiming) -> None:
        """The budget check, made once per run: on the cached timing if there is one, else this run's."""
        self.timing = timing
        shapes = 1 if self.steps_per_epoch % self.chunk == 0 else 2
        self.budget = trial_budget(timing, total_steps=self.total_steps, shapes=shapes, budget=TRIAL_BUDGET)
        if not self.budget.allows:
            self.candidates = [False]
            if self.timing_cached:
                self.source, self.per_step = "cache", {False: timing.per_step}

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
