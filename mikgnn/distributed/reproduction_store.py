"""A reproduction's figures, read from MLflow alone: every FINISHED cell run of the experiment,
by the table slots its tags name (``reproduce_job``), one value per seed.

Tables 2-6 and 8-9 take a run's test metric at its best epoch; Table 7 the median of its
per-epoch training seconds. Where a seed has several runs for a slot (a rerun with other
settings), the newest counts.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict

from mlflow.tracking import MlflowClient

from mikgnn.distributed.reproduce_job import DATASET_TAG, HARDWARE_TAG, SEED_TAG, TABLE_TAG, cell_runs
from mikgnn.distributed.tracking import FAILURE_TAG, KIND_TAG
from mikgnn.reproduction.collected import DIAGNOSTICS, Collected, slot_columns
from mikgnn.reproduction.tables import TABLES


def _value(client: MlflowClient, run, table: int, column: str) -> float | None:
    metrics = run.data.metrics
    if TABLES[table].kind == "timing":
        history = client.get_metric_history(run.info.run_id, "train/seconds")
        return statistics.median(m.value for m in history) if history else None
    metric = TABLES[table].metrics[0] if TABLES[table].axis is not None else column  # recall@10@n8: recall@10
    return metrics.get("test/" + metric.replace("@", "_at_"))


def collect(tracking_uri: str, experiment: str) -> Collected:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri}; the experiments there: {names}")
    out = Collected(experiment, found.tags.get(DATASET_TAG, ""))
    runs = cell_runs(client, found.experiment_id)
    values: dict = defaultdict(dict)
    for run in runs:  # oldest first: a newer run of the same slot and seed replaces an older one
        tags = run.data.tags
        seed = int(tags.get(SEED_TAG, 0))
        for key, row_slot in tags.items():
            if not key.startswith(TABLE_TAG) or int(key[len(TABLE_TAG):]) not in TABLES:
                continue
            table = int(key[len(TABLE_TAG):])
            label, columns = slot_columns(table, row_slot)
            for column in columns:
                value = _value(client, run, table, column)
                if value is not None:
                    values[(table, label, column)][seed] = value
                    out.seeds.add(seed)
            for name in DIAGNOSTICS:  # does the attention learn? (the last epoch's, docs/model.md)
                if TABLES[table].kind == "accuracy" and name in run.data.metrics:
                    values[(table, label, name)][seed] = run.data.metrics[name]
            if TABLES[table].kind == "timing" and HARDWARE_TAG in tags:
                out.hardware.add(tags[HARDWARE_TAG])
    out.values = dict(values)
    searches = client.search_runs([found.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'search'",
                                  order_by=["attributes.start_time ASC"])
    for search in searches:
        command = search.data.tags.get("command", "")
        if command not in out.commands:  # a rerun of the same command (after an interruption)
            out.commands.append(command)
        layout = _layout(client, search.info.run_id)
        out.skipped.update(layout.get("skipped", {}))
    for run in cell_runs(client, found.experiment_id, finished=False):
        # a slot planned but never finished says so, and why (an earlier command may have left it
        # out); the report shows this only where no seed has a finished value
        reason = run.data.tags.get(FAILURE_TAG, "")
        for key, row_slot in run.data.tags.items():
            if key.startswith(TABLE_TAG) and int(key[len(TABLE_TAG):]) in TABLES:
                out.unfinished[f"{key[len(TABLE_TAG):]}={row_slot}"] = (run.info.status.lower(), reason[:500])
    return out


def _layout(client: MlflowClient, run_id: str) -> dict:
    """A reproduction run's plan (the cells, and the slots it left out with the reason)."""
    try:
        path = client.download_artifacts(run_id, "search_space.json")
        with open(path) as f:
            return json.load(f)
    except Exception:  # an older or foreign run without the plan
        return {}
