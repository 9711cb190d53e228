"""MLflow: one run per Tune trial, plus one run for the search itself.

Metric names keep the library's keys with '@' spelled '_at_' (MLflow refuses '@'):
'valid/recall_at_20'. Epoch metrics are logged with step = epoch and only once per epoch,
so a trial resumed from a checkpoint never logs an epoch twice. The default store is
sqlite in the working folder (MLflow 3 refuses the old file store).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from mikgnn.distributed.driver import driver_alive, driver_identity

TRIAL_TAG = "mikgnn.trial_id"
KIND_TAG = "mikgnn.kind"
SEARCH_TAG = "mikgnn.search"
CHECKPOINT_ARTIFACT = "best_checkpoint"  # a finished trial's best checkpoint, as a run artifact
WARNING_TAG = "mikgnn.warning"  # "not learning" (experiment.learning_warning)
NODES_TAG = "mikgnn.worker_nodes"  # the Ray node ids of the trial's Train workers, rank order
FAILURE_TAG = "failure_reason"
DRIVER_TAG = "mikgnn.driver"  # a search run's driver process, host:pid:start (distributed.driver)


def default_tracking_uri() -> str:
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def local_store_folder(tracking_uri: str) -> Path | None:
    """The folder of a file-backed store (sqlite:///path/mlflow.db), which every node that runs a
    trial must see; None for a tracking server."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).resolve().parent
    return None


def metric_key(key: str) -> str:
    return key.replace("@", "_at_")


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The experiment ``name``, created when absent. Its artifacts (checkpoints, plots) go where
    the store is: beside a file-backed store (``<folder of mlflow.db>/mlruns``, which the
    multi-node check covers with the store), else to the tracking server's own artifact store."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    store = local_store_folder(tracking_uri)
    return client.create_experiment(name, artifact_location=(store / "mlruns").as_uri() if store else None)


def _metrics(values: dict, step: int) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(metric_key(k), float(v), now, step) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


class TrialTracker:
    """A picklable handle on one trial's MLflow run; rank 0 of the Train workers logs through it."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self._logged: set[int] | None = None

    def __getstate__(self) -> dict:
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["tracking_uri"], state["run_id"])

    @property
    def address(self) -> dict[str, str]:
        """What a training loop needs to log to this run (``TrialTracker(**address)``)."""
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id}

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    @classmethod
    def open(cls, tracking_uri: str, experiment: str, trial_id: str, run_name: str, params: dict,
             search: str | None = None) -> TrialTracker:
        """The trial's run: created once, re-opened (not duplicated) when a trial is restored.

        Trial runs are top-level (not nested under the search's run, which the UI collapses),
        so the runs table and the compare views show them at once; ``search`` tags them."""
        client = MlflowClient(tracking_uri)
        exp = experiment_id(client, experiment, tracking_uri)
        found = trial_runs(client, exp, trial_id)
        if found:  # a restored trial
            return cls.reopen(tracking_uri, found[0].info.run_id)
        tags = {TRIAL_TAG: trial_id, KIND_TAG: "trial"} | ({SEARCH_TAG: search} if search else {})
        run = client.create_run(exp, run_name=run_name, tags=tags)
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return cls(tracking_uri, run.info.run_id)

    @classmethod
    def reopen(cls, tracking_uri: str, run_id: str, tags: dict[str, str] | None = None,
               params: dict | None = None) -> TrialTracker:
        """An ended run running again (a trial restored, a cell continued from its checkpoint by
        a later trial: ``tags`` then names the new trial and search, ``params`` its settings, of
        which those the run lacks, a setting added since, are logged); the reason it was ended
        no longer holds."""
        client = MlflowClient(tracking_uri)
        data = client.get_run(run_id).data
        new = [Param(k, str(v)) for k, v in (params or {}).items() if k not in data.params]
        client.log_batch(run_id, params=new, tags=[RunTag(k, v) for k, v in (tags or {}).items()])
        client.update_run(run_id, status="RUNNING")
        if FAILURE_TAG in data.tags:
            client.delete_tag(run_id, FAILURE_TAG)
        return cls(tracking_uri, run_id)

    def log_epochs(self, history: list[dict]) -> None:
        """Log the epochs of ``history`` that this run does not hold yet."""
        client = self.client
        if self._logged is None:
            self._logged = {m.step for m in client.get_metric_history(self.run_id, "valid/auc")}
        for metrics in history:
            epoch = int(metrics["epoch"])
            if epoch in self._logged:
                continue
            client.log_batch(self.run_id, metrics=_metrics({k: v for k, v in metrics.items() if k != "epoch"}, epoch))
            self._logged.add(epoch)

    def warn(self, warning: str) -> None:
        """A run that looks untrained says so (``experiment.learning_warning``): tag mikgnn.warning."""
        self.client.set_tag(self.run_id, WARNING_TAG, warning[:5000])

    def log_result(self, final: dict, checkpoint_dir: str | None = None, manifest: dict | None = None) -> None:
        """Test metrics of the best epoch, the Recall@K plot, the best checkpoint and the manifest;
        once: a trial restored after it had finished (interrupted between its last log and Tune's
        record of it) runs no epoch and finds its result logged already."""
        client = self.client
        if any(k.startswith("test/") for k in client.get_run(self.run_id).data.metrics):
            return
        best = {f"best/{k}" if k.startswith("valid/") else k: v for k, v in final.items()
                if k.startswith(("test/", "valid/")) or k == "best_epoch"}
        memory = {k: v for k, v in final.items() if k.endswith("/peak_rss_mib")}
        tags = [RunTag(NODES_TAG, final["worker_nodes"])] if "worker_nodes" in final else []
        client.log_batch(self.run_id, metrics=_metrics(best | memory, int(final.get("best_epoch", 0))), tags=tags)
        with tempfile.TemporaryDirectory() as tmp:
            plot = Path(tmp) / "recall_at_k.png"
            if _recall_plot(final, plot):
                client.log_artifact(self.run_id, str(plot))
            if manifest is not None:
                path = Path(tmp) / "manifest.json"
                path.write_text(json.dumps(manifest, indent=2))
                client.log_artifact(self.run_id, str(path))
        if checkpoint_dir is not None:
            client.log_artifacts(self.run_id, checkpoint_dir, artifact_path=CHECKPOINT_ARTIFACT)

    @contextmanager
    def ending(self):
        """Run the trial's work: a run Tune stops ends KILLED, one that raises ends FAILED (a
        run its loop already finished keeps FINISHED)."""
        try:
            yield
        except SystemExit:  # Tune stopped the trial (ASHA, the search's end) in a reused actor
            self.end("KILLED")
            raise
        except BaseException as exc:
            self.end("FAILED", reason=f"{type(exc).__name__}: {exc}")
            raise

    def end(self, status: str, reason: str | None = None) -> None:
        """Set a terminal status, unless the run already has one (a finished run stays FINISHED);
        ``reason`` becomes its ``failure_reason`` tag."""
        terminate_running(self.client, [self.client.get_run(self.run_id)], status, reason)


def close_if_running(tracking_uri: str, experiment: str, trial_id: str, status: str,
                     reason: str | None = None) -> bool:
    """Give a trial's run a terminal status unless it has one (a stopped or crashed trial);
    ``reason`` becomes its ``failure_reason`` tag. False when the trial has no run."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return False
    runs = trial_runs(client, found.experiment_id, trial_id)
    terminate_running(client, runs, status, reason)
    return bool(runs)


def trial_runs(client: MlflowClient, experiment_id: str, trial_id: str) -> list:
    """The run of Tune trial ``trial_id`` (a list: empty when it has none)."""
    return client.search_runs([experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}'")


def has_checkpoint(client: MlflowClient, run_id: str) -> bool:
    """Whether the run holds a finished trial's best checkpoint (``CHECKPOINT_ARTIFACT``)."""
    return CHECKPOINT_ARTIFACT in {a.path for a in client.list_artifacts(run_id)}


def close_running_trials(tracking_uri: str, experiment: str, search: str, status: str, reason: str,
                         mark_search: bool = False, explain_killed: bool = False) -> None:
    """End every RUNNING trial run of ``search`` with ``status`` and ``reason``; with
    ``mark_search``, tag the search's own run with the reason too (read back by run_search);
    with ``explain_killed``, give the reason to its KILLED runs that have none (the trials Tune
    stopped on its way out end KILLED before this is called)."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{search}'")
    trials = [r for r in runs if r.data.tags.get(KIND_TAG) != "search"]
    if mark_search:
        for run in runs:
            if run.data.tags.get(KIND_TAG) == "search":
                client.set_tag(run.info.run_id, FAILURE_TAG, reason[:5000])
    terminate_running(client, trials, status, reason)
    if explain_killed:
        for run in trials:
            if run.info.status == "KILLED" and FAILURE_TAG not in run.data.tags:
                client.set_tag(run.info.run_id, FAILURE_TAG, reason[:5000])


def terminate_running(client: MlflowClient, runs: list, status: str, reason: str | None) -> None:
    """Give each RUNNING run of ``runs`` ``status``, with ``reason`` as its failure_reason tag."""
    for run in runs:
        if run.info.status == "RUNNING":
            if reason:
                client.set_tag(run.info.run_id, FAILURE_TAG, reason[:5000])
            client.set_terminated(run.info.run_id, status=status)


def open_search_run(tracking_uri: str, experiment: str, name: str, command: str, space: dict,
                    settings: str = "") -> str:
    """The search's own run: its command, its space and (``settings.txt``) the fixed settings
    of its trials with the layer that set each."""
    client = MlflowClient(tracking_uri)
    exp = experiment_id(client, experiment, tracking_uri)
    end_orphaned_searches(client, exp, name)
    found = client.search_runs([exp], filter_string=f"tags.`{KIND_TAG}` = 'search' and tags.`{SEARCH_TAG}` = '{name}'")
    if found:  # a resumed search: running again, and an earlier stop's reason no longer holds
        client.update_run(found[0].info.run_id, status="RUNNING")
        client.set_tag(found[0].info.run_id, DRIVER_TAG, driver_identity())
        if FAILURE_TAG in found[0].data.tags:
            client.delete_tag(found[0].info.run_id, FAILURE_TAG)
        return found[0].info.run_id
    run = client.create_run(exp, run_name=f"search {name}", tags={KIND_TAG: "search", SEARCH_TAG: name,
                                                                  "command": command, DRIVER_TAG: driver_identity()})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search_space.json"
        path.write_text(json.dumps(space, indent=2))
        client.log_artifact(run.info.run_id, str(path))
    if settings:
        client.log_text(run.info.run_id, settings + "\n", "settings.txt")
    return run.info.run_id


def end_orphaned_searches(client: MlflowClient, experiment_id: str, by: str) -> None:
    """End KILLED, with the reason, each RUNNING search run of the experiment (other than
    ``by``, the search now starting, whose resume deals with its own runs) whose driver on
    this host is gone (killed outright: nothing else leaves one RUNNING), and its RUNNING
    trial runs; a reproduction re-opens the cell runs it continues."""
    for run in client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'search' and "
                                  "attributes.status = 'RUNNING'"):
        driver = run.data.tags.get(DRIVER_TAG, "")
        if run.data.tags.get(SEARCH_TAG) == by or driver_alive(driver) is not False:
            continue
        host, pid, _ = driver.rsplit(":", 2)
        reason = (f"killed: its driver (process {pid} on {host}) ended without closing its runs (killed "
                  f"outright); found by {by}")
        search = run.data.tags[SEARCH_TAG]
        trials = client.search_runs([experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{search}' and "
                                    "attributes.status = 'RUNNING'")
        terminate_running(client, [t for t in trials if t.data.tags.get(KIND_TAG) != "search"], "KILLED", reason)
        terminate_running(client, [run], "KILLED", reason)


def close_search_run(tracking_uri: str, run_id: str, best: dict, status: str = "FINISHED",
                     reason: str | None = None) -> None:
    """Record the best trial so far (as tags, which a resumed search may update) and the status."""
    client = MlflowClient(tracking_uri)
    tags = [RunTag("best_trial", str(best.get("trial_id", "")))]
    tags += [RunTag(FAILURE_TAG, reason[:5000])] if reason else []
    tags += [RunTag(f"best.{k}", str(v)) for k, v in best.get("params", {}).items()]
    client.log_batch(run_id, tags=tags,
                     metrics=_metrics({f"best/{k}": v for k, v in best.get("metrics", {}).items()}, 0))
    client.set_terminated(run_id, status=status)


def _recall_plot(final: dict, path: Path) -> bool:
    """Recall@K of the best epoch, valid and test, into path; False, and nothing written, for a
    result without Recall@K (an empty plot would only warn)."""
    curves = {split: sorted((int(k.split("@")[1]), v) for k, v in final.items() if k.startswith(f"{split}/recall@"))
              for split in ("valid", "test")}
    if not any(curves.values()):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for split, points in curves.items():
        if points:
            ax.plot(*zip(*points), marker="o", label=split)
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_title(f"Recall@K at the best epoch ({final.get('best_epoch')})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
