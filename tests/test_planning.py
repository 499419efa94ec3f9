"""How the trainer sizes compiled calls and picks XLA: pure Python, no TensorFlow."""

from __future__ import annotations

import pytest

from fmtrain.engine.planning import CallPlan, JitDecision, pick_chunk


@pytest.mark.parametrize("steps, target, expected",
                         [(36, 256, 36), (1500, 256, 250), (1500, 1000, 750), (37, 16, 16), (375, 256, 125)])
def test_chunks_prefer_divisors_so_every_call_has_one_shape(steps, target, expected):
    assert pick_chunk(steps, target) == expected


def test_auto_jit_times_both_candidates_and_keeps_the_faster():
    plan = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=1000, steps_per_execution="auto",
                    jit_policy="auto")
    assert plan.candidates == [True, False]
    seconds = {True: 3.0, False: 0.5}  # XLA slower here (e.g. convolutions on some CPUs)
    for _ in range(4):
        n, jit = plan.next_call(0)
        plan.record(jit, n, seconds[jit] * n / plan.chunk)
    assert plan.decided and plan.jit is False
    # The first (compiling) call of each candidate is never what decides.
    assert set(plan.per_step) == {True, False}


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
    plan = CallPlan(steps_per_epoch=100, batch_size=256, total_steps=1000, steps_per_execution="auto",
                    jit_policy="auto")
    for per_step in (9.0, 0.002, 9.0, 0.001):
        n, jit = plan.next_call(0)
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
