"""How the trainer sizes compiled calls and picks XLA: pure Python, no TensorFlow."""

from __future__ import annotations

import pytest

from fmtrain.engine import planning
from fmtrain.engine.planning import CallPlan, GraphTiming, JitDecision, pick_chunk


@pytest.mark.parametrize("steps, target, expected",
                         [(36, 256, 36), (1500, 256, 250), (1500, 1000, 750), (37, 16, 16), (375, 256, 125)])
def test_chunks_prefer_divisors_so_every_call_has_one_shape(steps, target, expected):
    assert pick_chunk(steps, target) == expected


def _run(plan: CallPlan, seconds: dict[bool, tuple[float, float]], calls: int) -> list[bool]:
    """Feed the plan fake call times: (first call, steady call) seconds of a full call per candidate."""
    used = []
    for _ in range(calls):
        n, jit = plan.next_call(0)
        first, steady = seconds[jit]
        plan.record(jit, n, (first if jit not in used else steady) * n / plan.chunk)
        used.append(jit)
    return used


# Graph: first call 0.6 s (0.5 s of trace), then 0.1 s per 100-step call; XLA: the given steady time.
def _timings(xla_steady: float, xla_first: float = 2.0) -> dict[bool, tuple[float, float]]:
    return {False: (0.6, 0.1), True: (xla_first, xla_steady)}


def test_auto_jit_times_the_graph_first_then_xla_and_keeps_the_faster():
    # 1000 calls of 100 steps: the run is est. 100 s, XLA's compile est. 4 × 0.5 s = 2 s ≤ 10 s.
    plan = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=100_000, steps_per_execution=100,
                    jit_policy="auto")
    assert plan.candidates == [False, True]
    used = _run(plan, _timings(xla_steady=0.3), 6)  # XLA slower here (e.g. convolutions on some CPUs)
    assert used == [False, False, True, True, False, False]
    assert plan.decided and plan.jit is False and plan.measured
    # The first (compiling) call of each candidate is never what decides.
    assert plan.per_step == pytest.approx({False: 0.001, True: 0.003})
    assert "est. compile 2 s ≤ 10% of the run's est. 100 s" in plan.why
    assert "XLA's compile took 1.7 s" in plan.why  # 2.0 s first call less its 100 steps at 3 ms


def test_the_trial_is_skipped_when_its_estimated_cost_exceeds_the_budget():
    # 100 calls: the run is est. 10 s, XLA's compile est. 2 s > 1 s: XLA is never compiled.
    plan = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=10_000, steps_per_execution=100,
                    jit_policy="auto")
    used = _run(plan, _timings(xla_steady=0.01), 10)
    assert used == [False] * 10
    assert plan.decided and plan.jit is False and plan.skipped
    assert plan.why == ("XLA not tried: est. compile 2 s > 10% of the run's est. 10 s "
                        "(graph 1 ms/step × 10000 steps)")
    record = plan.record_of()
    assert (record.jit, record.source, record.candidates) == (False, "measured", (False,))
    assert record.per_step == pytest.approx({False: 0.001})
    # Nothing decided: a later, longer run may still try XLA; only the graph's timing is kept.
    assert not plan.measured and plan.timing_measured == GraphTiming(pytest.approx(0.5), pytest.approx(0.001))


def test_the_budget_is_exactly_a_tenth_of_the_run(monkeypatch):
    # est. compile 4 × 0.5 s = 2 s against 10% of 20,000 steps × 1 ms = 2 s: allowed, just.
    at_budget = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=20_000, steps_per_execution=100,
                         jit_policy="auto")
    assert _run(at_budget, _timings(xla_steady=0.05), 3)[-1] is True
    under = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=19_900, steps_per_execution=100,
                     jit_policy="auto")
    assert _run(under, _timings(xla_steady=0.05), 3)[-1] is False and under.skipped
    monkeypatch.setattr(planning, "TRIAL_BUDGET", 1.0)  # the constant is read per plan
    generous = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=2_000, steps_per_execution=100,
                        jit_policy="auto")
    assert _run(generous, _timings(xla_steady=0.05), 3)[-1] is True


def test_an_epoch_with_a_shorter_last_call_prices_two_compiles():
    # 150 steps an epoch in calls of 100 and 50: XLA compiles twice, est. 2 × 2 s = 4 s.
    plan = CallPlan(steps_per_epoch=150, batch_size=256, total_steps=25_000, steps_per_execution=100,
                    jit_policy="auto")
    plan.record(False, 100, 0.6)
    plan.record(False, 50, 0.35)  # the tail: traced again, not timed
    plan.record(False, 100, 0.1)
    assert plan.skipped and "est. compile 4 s > 10% of the run's est. 25 s" in plan.why


def test_a_cached_graph_timing_decides_the_budget_before_any_call():
    """Identical runs judge the same cached numbers: no timing of this run can flip the choice."""
    cached = GraphTiming(overhead=0.5, per_step=0.001)
    short = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=10_000, steps_per_execution=100,
                     jit_policy="auto", timing=cached)
    assert short.candidates == [False] and short.skipped and short.source == "cache"
    assert short.record_of().per_step == {False: 0.001}  # metrics.json's ms_per_step: the cached graph
    assert short.why.endswith("(graph timing cached by an earlier run)")
    assert not short.measured and short.timing_measured is None  # nothing new to store
    # This run's graph would have priced the trial cheaply; the cached timing still decides.
    assert _run(short, {False: (0.1, 0.1)}, 4) == [False] * 4 and short.jit is False
    longer = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=100_000, steps_per_execution=100,
                      jit_policy="auto", timing=cached)
    # A longer run finds the trial affordable; a slow first graph call of its own changes nothing.
    used = _run(longer, {False: (50.0, 0.1), True: (2.0, 0.05)}, 5)
    assert used == [False, False, True, True, True] and longer.measured and longer.jit is True


def test_a_short_run_does_not_pay_for_calibration():
    plan = CallPlan(steps_per_epoch=8, batch_size=32, total_steps=16, steps_per_execution="auto", jit_policy="auto")
    assert plan.candidates == [False] and plan.decided


@pytest.mark.parametrize("seconds", [(30.0, 10.0, 10.0, 10.0), (0.01, 0.001, 0.002, 0.5)], ids=["slow", "fast"])
def test_call_size_never_depends_on_timing(seconds):
    """The same config gives the same calls (and compiled shapes) however fast each call ran."""
    plan = CallPlan(steps_per_epoch=1000, batch_size=32, total_steps=5000, steps_per_execution="auto",
                    jit_policy="auto")
    chunk = plan.chunk
    assert chunk == 250
    for second in seconds:
        n, jit = plan.next_call(0)
        plan.record(jit, n, second)
    assert plan.chunk == chunk and plan.record_of().steps_per_execution == 250


def test_a_known_decision_runs_no_trial_and_says_why():
    rule = JitDecision(False, "rule", "convolutions on CPU: XLA is slower there (measured), no trial")
    plan = CallPlan(steps_per_epoch=100, batch_size=32, total_steps=1000, steps_per_execution="auto",
                    jit_policy="auto", known=rule)
    assert plan.candidates == [False] and plan.decided and not plan.measured
    record = plan.record_of()
    assert (record.jit, record.source, record.why) == (False, "rule", rule.why)


def test_a_short_run_skips_xla_even_when_a_cache_says_it_wins():
    cached = JitDecision(True, "cache", "timed earlier", {True: 0.001, False: 0.002})
    plan = CallPlan(steps_per_epoch=8, batch_size=32, total_steps=16, steps_per_execution="auto", jit_policy="auto",
                    known=cached)
    assert plan.candidates == [False] and plan.source == "rule"


def test_a_measured_plan_reports_both_timings():
    plan = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=100_000, steps_per_execution=100,
                    jit_policy="auto")
    for jit, per_step in ((False, 0.006), (False, 0.001), (True, 9.0), (True, 0.002)):
        n, next_jit = plan.next_call(0)
        assert next_jit is jit
        plan.record(jit, n, per_step * n)
    record = plan.record_of()
    assert plan.measured and record.source == "measured" and record.jit is False
    assert "XLA 2 ms/step" in record.why and "graph 1 ms/step" in record.why


def test_a_failed_candidate_is_dropped():
    plan = CallPlan(steps_per_epoch=100, batch_size=32, total_steps=10000, steps_per_execution=10, jit_policy="auto")
    plan.drop(True, "XLA could not compile this model")
    assert plan.next_call(0) == (10, False)
    assert plan.next_call(95) == (5, False)  # the epoch's end
    assert plan.next_call(13) == (7, False)  # back on the grid after a resume at step 13


def test_a_choice_handed_down_from_an_earlier_phase_is_not_measured_again():
    earlier = JitDecision(True, "measured", "earlier phase of this run: timed", {True: 0.001, False: 0.002})
    plan = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=1000, steps_per_execution="auto",
                    jit_policy="auto", known=earlier)
    assert plan.candidates == [True] and not plan.measured  # nothing new to cache


def test_a_failed_xla_compile_is_a_decision_worth_keeping():
    plan = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=1000, steps_per_execution="auto",
                    jit_policy="auto")
    plan.drop(True, "XLA could not compile this model (no kernel)")
    assert plan.measured and plan.record_of().jit is False and "could not compile" in plan.why
