"""The one writer of the trial runs in MLflow: a Tune callback on the search's driver.

Workers only ``report()`` to Tune. ``RunOwner`` opens a trial's run when Tune starts the trial
(re-opens it when Tune restores it), logs each epoch's result with step = epoch, once,
tags a "not learning" warning, and ends the run with its true status:

- the trial's last report (``FINAL``) logs the test metrics, the Recall@K plot, the dataset's
  manifest and the best checkpoint, and ends the run FINISHED once Tune has the trial complete;
- a trial the scheduler stops at a rung ends FINISHED, tagged ``EARLY_STOP_TAG`` with after
  which epoch: the scheduler working as designed (KILLED: a person or a signal stopped it);
- a trial that raises ends FAILED with the exception line of its ``error.txt``;
- a trial the watchdog stops ends FAILED with the watchdog's reason (``stalled``);
- whatever the search leaves running when it stops (Ctrl-C, SIGTERM, an error in Tune's own
  loop) the driver ends with ``end_running``, with the reason it knows.

A search resumed by ``Tuner.restore`` gets this callback back from Tune's state; it starts
afresh and finds its runs again by their trial-id tag.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.result import AUTO_RESULT_KEYS

from mikgnn.distributed.tracking import (
    CHECKPOINT_ARTIFACT,
    EARLY_STOP_TAG,
    FAILURE_TAG,
    KIND_TAG,
    NODES_TAG,
    SEARCH_TAG,
    TRIAL_TAG,
    WARNING_TAG,
    experiment_id,
    has_checkpoint,
    log_dataset,
    log_result,
    metrics_at,
    provenance,
    terminate_running,
    trial_runs,
)
from mikgnn.distributed.train_loop import FINAL, WARNING
from mikgnn.model_store import export_best
from mikgnn.processed import read_manifest

SETTINGS_ARTIFACT = "settings.json"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's nesting: a trial's run under its search's run

NOT_LOGGED = {*AUTO_RESULT_KEYS, "done", "trial_id", "should_checkpoint", "checkpoint_path", "epoch", "best_epoch",
              FINAL, WARNING}


@dataclass(frozen=True)
class RunSpec:
    """What a trial's run holds from the start."""

    name: str
    params: dict
    tags: dict[str, str] = field(default_factory=dict)
    processed: str | None = None  # its dataset, whose manifest the finished run keeps
    settings: dict | None = None  # every setting of the trial: the run's settings.json


class RunOwner(tune.Callback):
    """Opens, logs to and ends the MLflow run of every trial of search ``search``."""

    def __init__(self, tracking_uri: str, experiment: str, search: str, describe: Callable[[Trial], RunSpec],
                 parent: str | None = None, logs: Callable[[str], bool] | None = None):
        """``parent``: the search's own run, under which the UI nests the trials' runs; ``logs``:
        which result keys the runs log (``tracking.compared``; None: every one)."""
        self.tracking_uri, self.experiment, self.search, self.describe = tracking_uri, experiment, search, describe
        self.parent, self.logs = parent, logs
        self._reset()

    def _reset(self) -> None:
        self._runs: dict[str, str] = {}
        self._logged: dict[str, set[int]] = {}
        self._final: dict[str, dict] = {}
        self._stopped: dict[str, str] = {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        """A resumed search gets its callbacks back from Tune's state: its runs are found again."""
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def run_id(self, trial: Trial) -> str:
        """The trial's run: created the first time, re-opened when Tune restores the trial."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        spec, client = self.describe(trial), self.client
        exp = experiment_id(client, self.experiment, self.tracking_uri)
        tags = {TRIAL_TAG: trial.trial_id, KIND_TAG: "trial", SEARCH_TAG: self.search} | provenance() | spec.tags
        tags |= {PARENT_TAG: self.parent} if self.parent else {}
        found = next((r.info.run_id for r in trial_runs(client, exp, trial.trial_id)), None)
        if found is None:
            run_id = client.create_run(exp, run_name=spec.name, tags=tags).info.run_id
            client.log_batch(run_id, params=[Param(k, str(v)) for k, v in spec.params.items()])
            if spec.settings is not None:
                client.log_dict(run_id, spec.settings, SETTINGS_ARTIFACT)
            manifest = read_manifest(spec.processed) if spec.processed else None
            if manifest is not None:
                log_dataset(client, run_id, spec.processed, manifest)
        else:
            run_id = found
            reopen(client, run_id, tags, spec.params)
        self._runs[trial.trial_id] = run_id
        self._logged[trial.trial_id] = {m.step for m in client.get_metric_history(run_id, "valid/auc")}
        return run_id

    def _log_epoch(self, trial_id: str, run_id: str, result: dict) -> None:
        """An epoch's metrics with step = epoch, unless the run holds that epoch already."""
        epoch = int(result.get("epoch", 0))
        if epoch and epoch not in self._logged[trial_id]:
            self.client.log_batch(run_id, metrics=metrics_at({k: v for k, v in result.items() if self._logged_key(k)},
                                                             epoch))
            self._logged[trial_id].add(epoch)

    def _logged_key(self, key: str) -> bool:
        return key not in NOT_LOGGED and (self.logs is None or self.logs(key))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id, client = self.run_id(trial), self.client
        if WARNING in result:  # the tag keeps every warning the trial reported, first first
            earlier = client.get_run(run_id).data.tags.get(WARNING_TAG, "")
            if str(result[WARNING]) not in earlier:
                client.set_tag(run_id, WARNING_TAG, "\n".join(filter(None, (earlier, str(result[WARNING]))))[:5000])
        if result.get(FINAL):
            self._final[trial.trial_id] = result
            return
        self._log_epoch(trial.trial_id, run_id, result)
        epoch = int(result.get("epoch", 0))
        if result.get("done"):  # Tune stops the trial at this result: its scheduler's decision
            self._stopped[trial.trial_id] = (f"stopped by the search's scheduler (ASHA) after epoch {epoch}: its "
                                             "validation metric was below the rung's cut")

    def on_trial_complete(self, iteration, trials, trial, **info):
        """A finished trial's result is logged and its run ends FINISHED; so does one its
        scheduler stopped, tagged with why. Another, stopped because the search stops, is left
        to the driver (``end_running``), which knows why."""
        if trial.trial_id in self._final:
            self._finish(trial, self._final.pop(trial.trial_id))
        elif trial.trial_id in self._stopped:
            run_id, client = self.run_id(trial), self.client
            client.set_tag(run_id, EARLY_STOP_TAG, self._stopped.pop(trial.trial_id))
            end(client, run_id, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        """FAILED, with the trial's error; a trial that failed before it started (its actor
        could not be created) gets its run here, so that MLflow holds every trial."""
        where = trial.local_path
        reason = f"the trial raised an error: {last_error_line(where)} (see {where}/error.txt)"
        end(self.client, self.run_id(trial), "FAILED", reason)

    def stalled(self, trial_id: str | None, reason: str) -> None:
        """The watchdog's record: the stalled trial's run (or, for the whole search, every trial
        still running) ends FAILED with the reason; the search run keeps the reason."""
        if trial_id is not None:
            if trial_id in self._runs:
                end(self.client, self._runs[trial_id], "FAILED", reason)
            return
        end_running(self.tracking_uri, self.experiment, self.search, "FAILED", reason, mark_search=True)

    def _finish(self, trial: Trial, final: dict) -> None:
        """Test metrics, plot, manifest and best checkpoint, once (a trial restored after its
        last report reports it again), then FINISHED."""
        run_id, client = self.run_id(trial), self.client
        if not any(k.startswith("test/") for k in client.get_run(run_id).data.metrics):
            tags = [RunTag(NODES_TAG, final["worker_nodes"])] if "worker_nodes" in final else []
            spec = self.describe(trial)
            manifest = read_manifest(spec.processed) if spec.processed else None
            log_result(client, run_id, final, self._logged_key, manifest, tags)
        checkpoint = tune.Checkpoint(final["checkpoint_path"]) if final.get("checkpoint_path") else trial.checkpoint
        if checkpoint is not None and not has_checkpoint(client, run_id):
            with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory() as best:
                client.log_artifacts(run_id, str(export_best(folder, best)), artifact_path=CHECKPOINT_ARTIFACT)
        end(client, run_id, "FINISHED")


def last_error_line(trial_dir: str | None) -> str:
    """The exception line of a trial's error.txt, or a placeholder when it wrote none."""
    lines = []
    if trial_dir and os.path.exists(os.path.join(trial_dir, "error.txt")):
        with open(os.path.join(trial_dir, "error.txt")) as f:
            lines = [line.strip() for line in f if line.strip()]
    memory = next((line for line in lines if "running low on memory" in line), None)
    if memory is not None:  # Ray's memory monitor: its message ends in advice, not the cause
        return f"out of memory: Ray's memory monitor killed the trial's process: {memory}"[:500]
    return next((line for line in reversed(lines) if "Error" in line or "Exception" in line),
                lines[-1] if lines else "no error file")[:500]


def reopen(client: MlflowClient, run_id: str, tags: dict[str, str], params: dict) -> None:
    """An ended run running again (a trial restored); of ``params``, those the run lacks (a setting added since)
    are logged. The reason it was ended no longer holds."""
    data = client.get_run(run_id).data
    new = [Param(k, str(v)) for k, v in params.items() if k not in data.params]
    client.log_batch(run_id, params=new, tags=[RunTag(k, v) for k, v in tags.items()])
    client.update_run(run_id, status="RUNNING")
    if FAILURE_TAG in data.tags:
        client.delete_tag(run_id, FAILURE_TAG)


def end(client: MlflowClient, run_id: str, status: str, reason: str | None = None) -> None:
    """``status`` for a RUNNING run (an ended one keeps its own), ``reason`` as its failure_reason."""
    terminate_running(client, [client.get_run(run_id)], status, reason)


def end_running(tracking_uri: str, experiment: str, search: str, status: str, reason: str,
                mark_search: bool = False) -> None:
    """End every RUNNING trial run of ``search`` with ``status`` and ``reason`` (the driver's
    record of why the search stopped); with ``mark_search``, tag the search's own run with the
    reason too (read back by ``tuner.run_search``)."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{search}'")
    if mark_search:
        for run in runs:
            if run.data.tags.get(KIND_TAG) == "search":
                client.set_tag(run.info.run_id, FAILURE_TAG, reason[:5000])
    terminate_running(client, [r for r in runs if r.data.tags.get(KIND_TAG) != "search"], status, reason)
