"""MLflow: the store, the tags, and the search's own run (its trials' runs: ``run_owner``).

Metric names keep the library's keys with '@' spelled '_at_' (MLflow refuses '@'):
'valid/recall_at_20'. The default store is sqlite in the working folder (MLflow 3 refuses
the old file store).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mikgnn.distributed.driver import driver_alive, driver_identity
from mikgnn.tracking_uri import sqlite_file, sqlite_folder

TRIAL_TAG = "mikgnn.trial_id"
KIND_TAG = "mikgnn.kind"
SEARCH_TAG = "mikgnn.search"
CHECKPOINT_ARTIFACT = "best_checkpoint"  # a finished trial's best checkpoint, as a run artifact
WARNING_TAG = "mikgnn.warning"  # "not learning" (experiment.learning_warning)
NODES_TAG = "mikgnn.worker_nodes"  # the Ray node ids of the trial's Train workers, rank order
FAILURE_TAG = "failure_reason"
EARLY_STOP_TAG = "mikgnn.early_stopped"  # a FINISHED trial its scheduler stopped at a rung: when and why
DRIVER_TAG = "mikgnn.driver"  # a search run's driver process, host:pid:start (distributed.driver)


def default_tracking_uri() -> str:
    return f"sqlite:///{Path('mlflow.db').resolve()}"


def existing_store(tracking_uri: str) -> str:
    """``tracking_uri``, when it names a store that exists: a reader (recommend.py, report.py)
    refuses a sqlite file that is not there, instead of creating an empty one."""
    path = sqlite_file(tracking_uri)
    if path is not None and not path.is_file():
        raise ValueError(f"no MLflow store at {path}: run this from the folder that holds the search's mlflow.db, "
                         "or pass --tracking-uri")
    return tracking_uri


def metric_key(key: str) -> str:
    return key.replace("@", "_at_")


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The experiment ``name``, created when absent. Its artifacts (checkpoints, plots) go where
    the store is: beside a file-backed store (``<folder of mlflow.db>/mlruns``, which the
    multi-node check covers with the store), else to the tracking server's own artifact store."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    store = sqlite_folder(tracking_uri)
    try:
        return client.create_experiment(name, artifact_location=(store / "mlruns").as_uri() if store else None)
    except MlflowException:  # another search created it a moment ago
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's own notes off the console (creating tables, validating a model's example, a
    model registered): the run's console is ours. Its errors still raise."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def ready_store(tracking_uri: str) -> str:
    """``tracking_uri``, its sqlite file created: MLflow's first client on a new file creates
    its tables, and two at once (two searches started together) fail in the migration; a lock
    on the store's folder lets the first create them and the second find them."""
    folder = sqlite_folder(tracking_uri)
    if folder is None:
        return tracking_uri
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with quiet_mlflow():
            MlflowClient(tracking_uri).search_experiments(max_results=1)
    finally:
        os.close(fd)  # releases the lock
    return tracking_uri


def compared(key: str, k: int = 20) -> bool:
    """Whether a trial's run logs the result key ``key`` by default: the training loss, the
    validation and test AUC, each epoch's validation Recall/NDCG at the search's K (``k``) and
    the test's at every K; about 20 keys. The rest (the attention diagnostics, timings, memory,
    F1, the other validation Ks) a search logs with ``--set diagnostics=true``."""
    if key in ("train/loss", "valid/auc", "test/auc", f"valid/recall@{k}", f"valid/ndcg@{k}"):
        return True
    return key.startswith(("test/recall@", "test/ndcg@"))


def metrics_at(values: dict, step: int) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(metric_key(k), float(v), now, step) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def trial_runs(client: MlflowClient, experiment_id: str, trial_id: str) -> list:
    """The run of Tune trial ``trial_id`` (a list: empty when it has none)."""
    return client.search_runs([experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}'")


def has_checkpoint(client: MlflowClient, run_id: str) -> bool:
    """Whether the run holds a finished trial's best checkpoint (``CHECKPOINT_ARTIFACT``)."""
    return CHECKPOINT_ARTIFACT in {a.path for a in client.list_artifacts(run_id)}


def terminate_running(client: MlflowClient, runs: list, status: str, reason: str | None) -> None:
    """Give each RUNNING run of ``runs`` ``status``, with ``reason`` as its failure_reason tag."""
    for run in runs:
        if run.info.status == "RUNNING":
            if reason:
                client.set_tag(run.info.run_id, FAILURE_TAG, reason[:5000])
            client.set_terminated(run.info.run_id, status=status)


@functools.cache
def provenance() -> dict[str, str]:
    """MLflow's source tags of a run this process opens: its entry point and, in a git checkout,
    the commit (the UI's Source and Version columns)."""
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": Path(sys.argv[0]).name or "python"}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return tags
    return tags | ({"mlflow.source.git.commit": commit.stdout.strip()} if commit.returncode == 0 else {})


def log_dataset(client: MlflowClient, run_id: str, processed: str, manifest: dict) -> None:
    """The processed dataset as the run's MLflow dataset input: its name and seed, the
    fingerprint of its tables as the digest (else its manifest's hash), and where it lies."""
    name = f"{manifest.get('dataset', Path(processed).name)}-seed{manifest.get('seed', 0)}"
    digest = manifest.get("fingerprint") or hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    dataset = Dataset(name=name, digest=str(digest)[:20],
                      source_type="local" if "://" not in processed else processed.split("://", 1)[0],
                      source=json.dumps({"uri": processed}))
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "train")])])


def open_search_run(tracking_uri: str, experiment: str, name: str, command: str, space: dict,
                    settings: str = "", params: dict | None = None) -> str:
    """The search's own run: its command, ``params`` (how it searches), its space and
    (``settings.txt``) the fixed settings of its trials with the layer that set each."""
    client = MlflowClient(ready_store(tracking_uri))
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
                                                                  "command": command, DRIVER_TAG: driver_identity()}
                            | provenance())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search_space.json"
        path.write_text(json.dumps(space, indent=2))
        client.log_artifact(run.info.run_id, str(path))
    if settings:
        client.log_text(run.info.run_id, settings + "\n", "settings.txt")
    if params:
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def running_searches(client: MlflowClient, experiment_id: str, name: str | None = None) -> list[tuple]:
    """The RUNNING search runs of the experiment (of search ``name`` only, when given), each with
    whether its driver lives (``driver.driver_alive``: None for one of another host)."""
    named = f" and tags.`{SEARCH_TAG}` = '{name}'" if name else ""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'search' and "
                              f"attributes.status = 'RUNNING'{named}")
    return [(run, driver_alive(run.data.tags.get(DRIVER_TAG, ""))) for run in runs]


def end_orphaned_searches(client: MlflowClient, experiment_id: str, by: str) -> None:
    """End KILLED, with the reason, each RUNNING search run of the experiment (other than
    ``by``, the search now starting, whose resume deals with its own runs) whose driver on
    this host is gone (killed outright: nothing else leaves one RUNNING), and its RUNNING
    trial runs; a reproduction re-opens the cell runs it continues."""
    for run, alive in running_searches(client, experiment_id):
        if run.data.tags.get(SEARCH_TAG) == by or alive is not False:
            continue
        host, pid, _ = run.data.tags[DRIVER_TAG].rsplit(":", 2)
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
                     metrics=metrics_at({f"best/{k}": v for k, v in best.get("metrics", {}).items()}, 0))
    client.set_terminated(run_id, status=status)


def recall_plot(final: dict, path: Path) -> bool:
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


def log_result(client: MlflowClient, run_id: str, final: dict, keep: Callable[[str], bool], manifest: dict | None,
               tags: list[RunTag] = ()) -> None:
    """A finished run's result: its best epoch's metrics (``valid/`` as ``best/valid/``, ``test/``
    as they are, each a key ``keep`` takes) at step = best epoch, the Recall@K plot and the
    dataset's manifest."""
    best = {f"best/{k}" if k.startswith("valid/") else k: v for k, v in final.items()
            if (k.startswith(("test/", "valid/")) or k.endswith("/peak_rss_mib")) and keep(k)}
    client.log_batch(run_id, metrics=metrics_at(best, int(final.get("best_epoch", 0))), tags=list(tags))
    with tempfile.TemporaryDirectory() as tmp:
        if recall_plot(final, Path(tmp) / "recall_at_k.png"):
            client.log_artifact(run_id, str(Path(tmp) / "recall_at_k.png"))
    if manifest is not None:
        client.log_dict(run_id, manifest, "manifest.json")


def log_training_run(tracking_uri: str, experiment: str, name: str, params: dict, settings: dict, result: dict,
                     checkpoint: str, processed: str, manifest: dict, started_ms: int) -> str:
    """A finished ``train.py`` run as one MLflow run, the way a search's trial is logged: its
    params and settings.json, every epoch's compared metrics (step = epoch), the best epoch's
    test and validation metrics, the best weights (``best_checkpoint/``), the Recall@K plot,
    the manifest and the dataset input; the run id."""
    from mikgnn.model_store import export_best

    client = MlflowClient(ready_store(tracking_uri))
    exp = experiment_id(client, experiment, tracking_uri)
    warnings = {WARNING_TAG: "; ".join(result["warnings"])[:5000]} if result.get("warnings") else {}
    run_id = client.create_run(exp, run_name=name, start_time=started_ms,
                               tags={KIND_TAG: "train"} | provenance() | warnings).info.run_id
    epochs = [metrics_at({k: v for k, v in epoch.items() if compared(k)}, int(epoch["epoch"]))
              for epoch in result.get("history", ())]
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[m for epoch in epochs for m in epoch])
    client.log_dict(run_id, settings, "settings.json")
    log_result(client, run_id, result, compared, manifest)
    log_dataset(client, run_id, processed, manifest)
    with tempfile.TemporaryDirectory() as tmp:
        client.log_artifacts(run_id, str(export_best(checkpoint, tmp)), artifact_path=CHECKPOINT_ARTIFACT)
    client.set_terminated(run_id, "FINISHED")
    return run_id
