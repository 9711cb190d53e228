"""How every search of ours runs Tune: a search of trials (``tuner``) and a reproduction's grids
of cells (``reproduce_job``) alike.

Its callbacks are the driver's ``RunOwner`` (every trial's MLflow run), the ``SearchGuard``
(orphaned placement groups, stalls), whose ``StallStopper`` ends a stalled search, the
``SearchConsole`` (what the user reads) and ``StoppedCheckpoints`` (the disk). ``fit``
runs ``Tuner.fit`` with the SIGINT handler of before put back afterwards, Tune's own error
turned into ``SearchStopped`` with a one-line reason, and the job's leftover placement groups
removed whatever happened.
"""

from __future__ import annotations

import os
import re
import sys

from ray import tune

from mikgnn.distributed.console import SearchConsole
from mikgnn.distributed.placement import release_job_placement_groups
from mikgnn.distributed.ray_workarounds import sigint_kept
from mikgnn.distributed.run_owner import RunOwner
from mikgnn.distributed.train_loop import FINAL
from mikgnn.distributed.watchdog import SearchGuard, StallStopper


class SearchStopped(RuntimeError):
    """Ray Tune's own loop raised: with ray 2.60 it does when Ray's memory monitor kills a
    trial's process ("Caught unexpected exception: ... running low on memory"). The message is
    the reason the search's runs end with; its trials or cells continue from their checkpoints."""


def stopped_reason(exc: BaseException, then: str) -> str:
    """The failure_reason of runs that Tune's error stopped: the error it raised (the last
    "...Error: ..." line of the traceback Tune wraps in it, else its first line), and what to do."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", line)]
    cause = raised[-1] if raised else lines[0] if lines else type(exc).__name__  # Tune wraps a traceback
    return f"the search stopped on an error in Ray Tune: {cause[:600]}; {then}"


class StoppedCheckpoints(tune.Callback):
    """Deletes the checkpoint of a trial its scheduler stopped (ASHA at a rung): Tune never
    resumes a terminated trial, and its MLflow run keeps none. In a default music search these
    were 5 of 8 trials and 60 % of the disk."""

    def __init__(self):
        self.stopped: set[str] = set()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("done") and not result.get(FINAL):
            self.stopped.add(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        checkpoint = trial.checkpoint
        if trial.trial_id in self.stopped and checkpoint is not None:
            checkpoint.filesystem.delete_dir(checkpoint.path)


def count_ended(results: tune.ResultGrid) -> int:
    """The trials that ended: failed, sent their final report, or were stopped by their scheduler
    (a rung of ASHA). One that Tune merely terminated on an interrupt (a SIGTERM with every trial
    started) has not: its search or grid is incomplete, not done."""
    return sum(r.error is not None or bool((r.metrics or {}).get(FINAL)) or bool((r.metrics or {}).get("done"))
               for r in results)


def run_config(name: str, storage_path: str, owner: RunOwner, console: SearchConsole, stall_s: float | None,
               keep: int) -> tuple[tune.RunConfig, SearchGuard]:
    """The RunConfig of a search, and its guard (``guard.stalled``: why it stopped the search).
    Every trial checkpoints every epoch and keeps its ``keep`` newest. The console is ours
    (``console.SearchConsole``), not Tune's tables."""
    guard = SearchGuard(owner.stalled, stall_s=stall_s)
    # Tune forces an experiment-state snapshot each time a trial has checkpointed twice, which
    # with epochs of a second or two triggers its "snapshotting ... multiple times in the last
    # 5 seconds" warning on every search. The snapshot is a small write of the search's state.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's console (its tables, and even at verbose=0 a boxed header and a TensorBoard hint)
    # gives way to ours: Ray's documented switch back to its older reporter, silent at verbose=0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    callbacks = [owner, guard, console, StoppedCheckpoints()]
    config = tune.RunConfig(name=name, storage_path=storage_path, callbacks=callbacks,
                            stop=StallStopper(guard), checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
                            verbose=0)
    return config, guard


def fit(tuner: tune.Tuner, then: str) -> tune.ResultGrid:
    """``tuner.fit()``; SearchStopped, naming Tune's error and ``then`` (what to do), when Tune's
    own loop raises. A KeyboardInterrupt (a second Ctrl-C, a SIGTERM outside the loop) passes."""
    try:
        with sigint_kept():
            return tuner.fit()
    except Exception as exc:
        raise SearchStopped(stopped_reason(exc, then)) from exc
    finally:
        leftovers = release_job_placement_groups()
        if leftovers:
            print(f"removed {leftovers} placement group(s) that stopped trials left behind", file=sys.stderr)
