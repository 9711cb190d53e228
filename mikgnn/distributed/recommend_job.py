"""Top-K for many users as a Ray Data job: users in blocks, one loaded model per actor.

    users [N] ─► blocks of ``batch_users`` ─► map_batches(Scorer: load_trained once per actor,
                 Recommendations.block per block; ``concurrency`` actors, ``num_gpus`` each)
              ─► write_parquet into a staging folder ─► renamed into place (``storage.atomic_folder``;
                 on an object store a _SUCCESS marker, written last, says the folder is whole)

Memory per actor: the model plus one block's scores (batch_users x items floats), never U x I.
The source run (a trial of an MLflow tracking store) gets the output's location and summary.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mikgnn.distributed.tracking import CHECKPOINT_ARTIFACT, KIND_TAG, has_checkpoint, trial_runs
from mikgnn.model_store import load_trained
from mikgnn.recommend import Recommendations
from mikgnn.redact import redact
from mikgnn.storage import Location, atomic_folder

SUCCESS = "_SUCCESS"


class Scorer:
    """A Ray Data actor: the model loaded once, then one block of user indices per call."""

    def __init__(self, checkpoint: str, processed: str | None, k: int, keep_seen: bool, explain: bool,
                 gpu: bool, threads: int):
        torch.set_num_threads(max(1, threads))
        trained = load_trained(checkpoint, processed, device="cuda" if gpu else "cpu")
        self.recommendations = Recommendations(trained, k, keep_seen, explain)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.recommendations.block(batch["user"].astype(np.int64))


class RunError(ValueError):
    """An MLflow run that cannot give a model: unknown, or without a checkpoint."""


def checkpoint_of_run(tracking_uri: str, run_id: str, into: Path) -> tuple[str, Path]:
    """Download the model of ``run_id`` (a trial, or a search: its best trial) into ``into``;
    the trial's run id and the checkpoint folder."""
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise RunError(f"--run {run_id}: no such run in the tracking store {tracking_uri}") from None
    if run.data.tags.get(KIND_TAG) == "search":
        best = run.data.tags.get("best_trial")
        found = trial_runs(client, run.info.experiment_id, best) if best else []
        if not found:
            raise RunError(f"--run {run_id} is a search with no finished best trial to recommend from")
        run = found[0]
    if not has_checkpoint(client, run.info.run_id):
        raise RunError(f"--run {run.info.run_id} has no checkpoint (no '{CHECKPOINT_ARTIFACT}' artifact): "
                       "only a trial that finished logs one")
    path = client.download_artifacts(run.info.run_id, CHECKPOINT_ARTIFACT, str(into))
    return run.info.run_id, Path(path)


def write_recommendations(checkpoint: str, processed: str | None, users: np.ndarray, output: Location, k: int,
                          keep_seen: bool, explain: bool, batch_users: int, concurrency: int,
                          num_gpus: float, summary: dict) -> dict:
    """Run the job; the output folder appears whole or not at all. Returns the summary written
    to its _SUCCESS file."""
    start = time.perf_counter()
    cpus = 0 if num_gpus else 1
    ds = ray.data.from_items([{"user": int(u)} for u in users], override_num_blocks=max(1, concurrency))
    ds = ds.map_batches(Scorer, batch_size=batch_users, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=concurrency),
                        num_gpus=num_gpus, num_cpus=cpus,
                        fn_constructor_kwargs=dict(checkpoint=checkpoint, processed=processed, k=k,
                                                   keep_seen=keep_seen, explain=explain, gpu=num_gpus > 0,
                                                   threads=1))
    with atomic_folder(output, SUCCESS) as stage:
        ds.write_parquet(stage.uri)
        summary = dict(summary, users=int(users.size), k=k, rows=int(users.size) * k,
                       seconds=round(time.perf_counter() - start, 3), output=redact(str(output)))
        (stage / SUCCESS).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def record_on_run(tracking_uri: str, run_id: str, summary: dict) -> None:
    """The source run links to its recommendations: a tag and the summary as an artifact."""
    client = MlflowClient(tracking_uri)
    client.set_tag(run_id, "mikgnn.recommendations", summary["output"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recommendations.json"
        path.write_text(json.dumps(summary, indent=1) + "\n")
        client.log_artifact(run_id, str(path))
