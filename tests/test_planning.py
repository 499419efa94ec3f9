"""How the trainer sizes compiled calls and picks XLA: pure Python, no TensorFlow."""

from __future__ import annotations

import pytest

from fmtrain.engine.planning import CallPlan, pick_chunk


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


def test_slow_calls_are_resized_once_to_keep_progress_live():
    plan = CallPlan(steps_per_epoch=1000, batch_size=32, total_steps=5000, steps_per_execution="auto", jit_policy=False)
    assert plan.chunk == 250
    plan.record(False, 250, 30.0)  # compile
    plan.record(False, 250, 10.0)  # 40 ms per step → 10 s calls
    assert plan.chunk * 0.04 <= 0.5 and 1000 % plan.chunk == 0
    chunk = plan.chunk
    plan.record(False, chunk, 100.0)
    assert plan.chunk == chunk


def test_deterministic_plans_never_resize():
    plan = CallPlan(steps_per_epoch=1000, batch_size=32, total_steps=5000, steps_per_execution="auto", jit_policy=False,
                    adaptive=False)
    for seconds in (30.0, 10.0, 10.0):
        plan.record(False, 250, seconds)
    assert plan.chunk == 250


def test_a_failed_candidate_is_dropped():
    plan = CallPlan(steps_per_epoch=100, batch_size=32, total_steps=10000, steps_per_execution=10, jit_policy="auto")
    plan.drop(True)
    assert plan.next_call(0) == (10, False)
    assert plan.next_call(95) == (5, False)  # the epoch's end
    assert plan.next_call(13) == (7, False)  # back on the grid after a resume at step 13
