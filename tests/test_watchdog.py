"""The watchdog's rule on a clock of its own: a trial that waits for resources is stopped at the
bound, a trial that computes is left alone until BUSY_FACTOR bounds, and the bound follows the
epochs. Ray's state is replaced by the one-line diagnosis a real cluster gives."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mikgnn.distributed import watchdog


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trial(trial_id: str, status: str = "RUNNING"):
    return SimpleNamespace(trial_id=trial_id, status=status, temporary_state=SimpleNamespace(ray_actor=None))


@pytest.fixture
def guard(monkeypatch):
    stops: list = []
    clock = Clock()
    state = {"diagnosis": "waiting for 1 placement group(s) (CPU 1) that the cluster cannot place"}
    monkeypatch.setattr(watchdog, "reap_orphans", lambda job_id: [])
    monkeypatch.setattr(watchdog, "diagnose", lambda job_id: state["diagnosis"])
    g = watchdog.SearchGuard(lambda trial_id, reason: stops.append((trial_id, reason)), stall_s=100, clock=clock)
    g._job_id = "01000000"
    return g, clock, stops, state


def test_a_trial_waiting_for_a_placement_group_is_stopped_at_the_bound(guard):
    g, clock, stops, _ = guard
    trial = _trial("a")
    g.on_trial_start(0, [trial], trial)
    clock.now = 99
    g.on_step_end(0, [trial])
    assert stops == []
    clock.now = 101
    g.on_step_end(0, [trial])
    assert stops[0][0] == "a" and "placement group" in stops[0][1] and "no report for 101 s" in stops[0][1]
    assert g.stalled is None  # the search itself goes on


@pytest.mark.parametrize("diagnosis", [f"{watchdog.BUSY} (an epoch's training or validation)",
                                       f"{watchdog.UNKNOWN} (ConnectionError: the dashboard did not answer)"])
def test_a_computing_or_unknown_trial_is_stopped_only_after_busy_factor_bounds(guard, diagnosis):
    """Nothing known to wait (workers computing, or a task list that could not be read) is no
    proof of a stall: a slow first epoch on a loaded machine gets BUSY_FACTOR bounds."""
    g, clock, stops, state = guard
    state["diagnosis"] = diagnosis
    trial = _trial("b")
    g.on_trial_start(0, [trial], trial)
    for t in range(101, int(watchdog.BUSY_FACTOR * 100), 40):
        clock.now = t
        g.on_step_end(0, [trial])
    assert stops == [] and g.stalled is None
    clock.now = watchdog.BUSY_FACTOR * 100 + 1
    g.on_step_end(0, [trial])
    assert [s[0] for s in stops] == ["b"]


def test_a_search_with_only_pending_trials_is_stopped(guard):
    g, clock, stops, _ = guard
    clock.now = 150
    g.on_step_end(0, [_trial("c", status="PENDING")])
    assert g.stalled is not None and "placement group" in g.stalled
    assert stops == [(None, g.stalled)]
    assert watchdog.StallStopper(g).stop_all()


def test_the_default_bound_follows_the_longest_wait_between_reports():
    clock = Clock()
    g = watchdog.SearchGuard(lambda *a: None, clock=clock)
    trial = _trial("d")
    g.on_trial_start(0, [trial], trial)
    assert g.bound_s == watchdog.MIN_STALL_S
    clock.now = 120.0  # a 120 s epoch
    g.on_trial_result(0, [trial], trial, {})
    assert g.bound_s == watchdog.STALL_FACTOR * 120.0
