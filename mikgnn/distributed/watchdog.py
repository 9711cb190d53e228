"""The search's guard: orphaned placement groups removed as they appear, and a progress watchdog.

A Tune callback, run by the search's own driver loop (``on_step_end``, a few times a second):
- every ``reap_every_s`` it removes the placement groups of dead Train controllers
  (``placement.reap_orphans``): the fix for the hang of issue 11;
- a RUNNING trial that has reported nothing for the stall bound, while the cluster waits for
  something it cannot place (``diagnose``), is stopped: its MLflow run
  ends FAILED with a ``failure_reason`` tag naming what the cluster was waiting for, and its
  actor is killed, so Tune records an error and goes on with the other trials;
- when no trial has reported, started or ended for the stall bound while trials are still
  waiting, the whole search is stopped the same way (``stalled``, read by ``StallStopper``);
- a trial whose workers are computing and wait for nothing (a slow h = 4 epoch) is not stuck:
  it, or the search, is stopped only after ``BUSY_FACTOR`` bounds without a report; so is one
  whose tasks Ray's state API could not list (nothing is known to wait: on a loaded machine,
  a slow first epoch is far likelier than a hang the placement groups do not show).

The watchdog is the safety net, not the fix. Its bound is ``stall_s`` when given, else derived
from the search's own epochs: ``STALL_FACTOR`` times the longest wait between two reports seen
so far, and never less than ``MIN_STALL_S``, which also covers a trial's start-up (process
start, imports, worker group) on a loaded 2-core machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import ray
from ray import tune

from mikgnn.distributed.errors import error_line
from mikgnn.distributed.placement import reap_orphans
from mikgnn.distributed.ray_workarounds import GroupRecord, placement_group_records, trial_actor

MIN_STALL_S = 600.0
STALL_FACTOR = 10.0
BUSY_FACTOR = 6.0  # a trial whose workers hold their resources and wait for nothing gets this many bounds
REAP_EVERY_S = 2.0
CHECK_EVERY_S = 30.0
DATA_TASKS = ("Read", "ListFiles", "MapBatches", "SplitCoordinator", "Map(", "streaming_split")


def _free(resource: str) -> float:
    return float(ray.available_resources().get(resource, 0.0))


BUSY = "no report from the trial's training workers"
UNKNOWN = "no report; Ray's task state could not be read"


def diagnose(job_id: str) -> str:
    """What this job's work is waiting for, from Ray's own state (one line); it starts with
    ``BUSY`` when nothing waits for resources (the workers are computing, or stuck inside), and
    with ``UNKNOWN`` when the task list could not be read (the dashboard is down or too slow).
    The task list is this driver's cluster's: another Ray on the same machine (a second local
    search) would otherwise make the state API refuse to guess which one is meant."""
    groups = [g for g in placement_group_records(job_id) if g.state in ("PENDING", "RESCHEDULING")]
    free = f"{_free('CPU'):g} CPU and {_free('GPU'):g} GPU free of {ray.cluster_resources().get('CPU', 0):g} CPU"
    if groups:
        wanted = "; ".join(_bundles(g) for g in groups)
        return f"waiting for {len(groups)} placement group(s) ({wanted}) that the cluster cannot place: {free}"
    pending, data = [], []
    try:
        from ray.util.state import list_tasks

        # Only the unfinished ones, chosen by Ray: a search's job runs thousands of tasks, and a
        # list cut at its first 1,000 left out the one that waits (the test suite's job did).
        unfinished = [("job_id", "=", job_id), ("state", "!=", "FINISHED"), ("state", "!=", "FAILED")]
        tasks = list_tasks(address=ray.get_runtime_context().gcs_address, filters=unfinished, limit=1000,
                           timeout=10)
        for task in tasks:
            if any(word in task.name for word in DATA_TASKS):
                data.append(f"{task.name} {task.state}")
            elif task.state.startswith("PENDING"):
                pending.append(f"{task.name} {task.state}")
    except Exception as exc:  # the state API lives in the dashboard; say so and go on
        return f"{UNKNOWN} ({error_line(exc, 200)}); {free}"
    if data:
        return f"waiting for a Ray Data read: {', '.join(sorted(set(data))[:4])}; {free}"
    if pending:
        names = ", ".join(sorted(set(pending))[:4])
        return f"waiting for resources for {len(pending)} task(s)/actor(s): {names}; {free}"
    return f"{BUSY} (an epoch's training or validation); {free}"


def _bundles(group: GroupRecord) -> str:
    return " + ".join(",".join(f"{k} {v:g}" for k, v in sorted(b.items())) for b in group.bundles)


class SearchGuard(tune.Callback):
    """Reaps orphaned placement groups and stops trials (or the search) that make no progress.

    ``on_stall(trial_id or None, reason)`` records a stop (the MLflow side) before it happens."""

    def __init__(self, on_stall: Callable[[str | None, str], None], stall_s: float | None = None,
                 reap_every_s: float = REAP_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.on_stall, self.stall_s, self.reap_every_s, self.clock = on_stall, stall_s, reap_every_s, clock
        self._reset()

    def _reset(self) -> None:
        self.last_report: dict[str, float] = {}
        self.progress = self.clock()
        self.longest_wait = 0.0
        self.reaped: list[GroupRecord] = []
        self.stalled: str | None = None
        self._last_reap = -float("inf")
        self._job_id: str | None = None
        self._noted: set[str] = set()
        self._checked: dict[str, float] = {}
        self._reason = ""

    def __setstate__(self, state: dict) -> None:
        """A resumed search restores its callbacks from Tune's state: the clock and the job
        are the new process's, so the watch starts afresh."""
        self.__dict__.update(state)
        self._reset()

    @property
    def bound_s(self) -> float:
        if self.stall_s:
            return self.stall_s
        return max(MIN_STALL_S, STALL_FACTOR * self.longest_wait)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.last_report[trial.trial_id] = self.progress = self.clock()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        now = self.clock()
        self.longest_wait = max(self.longest_wait, now - self.last_report.get(trial.trial_id, now))
        self.last_report[trial.trial_id] = self.progress = now

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.last_report.pop(trial.trial_id, None)
        self.progress = self.clock()

    on_trial_error = on_trial_complete

    def on_step_end(self, iteration, trials, **info):
        now = self.clock()
        if self._job_id is None:
            self._job_id = ray.get_runtime_context().get_job_id()
        if now - self._last_reap >= self.reap_every_s:
            self._last_reap = now
            for group in reap_orphans(self._job_id):
                self.reaped.append(group)
                print(f"removed placement group {group.id} ({_bundles(group)}, {group.state}): its Ray Train "
                      "controller had died, and it would have held these resources until the search ended",
                      file=sys.stderr, flush=True)
        if self.stalled is not None:
            return
        bound = self.bound_s
        for trial in trials:
            if trial.status != "RUNNING" or trial.trial_id not in self.last_report:
                continue
            silent = now - self.last_report[trial.trial_id]
            if silent > bound and self._stuck(trial, silent, bound):
                self._stop_trial(trial, now, bound)
                return
        waiting = [t for t in trials if t.status in ("PENDING", "RUNNING")]
        if waiting and now - self.progress > bound and self._stuck(None, now - self.progress, bound):
            self.stalled = (f"the search made no progress for {now - self.progress:.0f} s (stall bound "
                            f"{bound:.0f} s, --stall-timeout): {self._reason}")
            print(f"error: {self.stalled}", file=sys.stderr, flush=True)
            self.on_stall(None, self.stalled)

    def _stuck(self, trial, silent: float, bound: float) -> bool:
        """Past the bound: stuck when the cluster waits for something it cannot place; a trial
        (or search) whose workers are computing, a slow h = 4 epoch say, or whose tasks could not
        be listed (nothing is known to wait), is stopped only past BUSY_FACTOR bounds. Ray's
        state is read at most every CHECK_EVERY_S per trial."""
        key = trial.trial_id if trial is not None else ""
        if self.clock() - self._checked.get(key, -float("inf")) < CHECK_EVERY_S and silent <= BUSY_FACTOR * bound:
            return False
        self._checked[key] = self.clock()
        self._reason = diagnose(self._job_id)
        if not self._reason.startswith((BUSY, UNKNOWN)) or silent > BUSY_FACTOR * bound:
            return True
        if key not in self._noted:
            self._noted.add(key)
            what = f"trial {key}" if key else "the search"
            known = "nothing waits for resources" if self._reason.startswith(BUSY) else self._reason
            print(f"note: {what}: no report for {silent:.0f} s, but {known}; stopped "
                  f"after {BUSY_FACTOR * bound:.0f} s without one", file=sys.stderr, flush=True)
        return False

    def _stop_trial(self, trial, now: float, bound: float) -> None:
        reason = (f"no report for {now - self.last_report[trial.trial_id]:.0f} s (stall bound {bound:.0f} s, "
                  f"--stall-timeout): {self._reason}")
        print(f"error: trial {trial.trial_id} stopped: {reason}", file=sys.stderr, flush=True)
        self.on_stall(trial.trial_id, reason)
        self.last_report.pop(trial.trial_id, None)
        self.progress = now  # the search goes on with its other trials
        actor = trial_actor(trial)
        if actor is not None:
            ray.kill(actor)


class StallStopper(tune.Stopper):
    """Ends the whole search once its guard has found it stalled."""

    def __init__(self, guard: SearchGuard):
        self.guard = guard

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.guard.stalled is not None
