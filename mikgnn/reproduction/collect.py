"""A reproduction's figures, read from MLflow alone: every FINISHED cell run of the experiment,
by the table slots its tags name (``distributed.reproduce_job``), one value per seed.

Tables 2-6 and 8-9 take a run's test metric at its best epoch; Table 7 the median of its
per-epoch training seconds. Where a seed has several runs for a slot (a rerun with other
settings), the newest counts.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient

from mikgnn.reproduction.tables import TABLES

KIND_TAG, TABLE_TAG, SEED_TAG = "mikgnn.kind", "mikgnn.table.", "mikgnn.seed"
HARDWARE_TAG, DATASET_TAG = "mikgnn.hardware", "mikgnn.dataset"


@dataclass
class Collected:
    experiment: str
    dataset: str
    # (table, row label, column) -> {seed: value}
    values: dict[tuple[int, str, str], dict[int, float]] = field(default_factory=dict)
    runs: dict[tuple[int, str, str], dict[int, str]] = field(default_factory=dict)  # the run ids
    skipped: dict[str, str] = field(default_factory=dict)  # "<table>=<row>[|axis]" -> reason
    hardware: set[str] = field(default_factory=set)  # where Table 7's cells ran
    commands: list[str] = field(default_factory=list)  # the reproduction commands, oldest first
    seeds: set[int] = field(default_factory=set)


def _column(table: int, row_slot: str) -> tuple[str, list[str]]:
    """A tag value "MI-KGNN" or "MI-KGNN|n8" -> the row label and the table's columns it fills."""
    label, _, axis = row_slot.partition("|")
    spec = TABLES[table]
    return label, [f"{spec.metrics[0]}@{axis}"] if axis else list(spec.metrics)


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
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'cell' and "
                              "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"],
                              max_results=50000)
    values: dict = defaultdict(dict)
    ids: dict = defaultdict(dict)
    for run in runs:  # oldest first: a newer run of the same slot and seed replaces an older one
        tags = run.data.tags
        seed = int(tags.get(SEED_TAG, 0))
        for key, row_slot in tags.items():
            if not key.startswith(TABLE_TAG) or int(key[len(TABLE_TAG):]) not in TABLES:
                continue
            table = int(key[len(TABLE_TAG):])
            label, columns = _column(table, row_slot)
            for column in columns:
                value = _value(client, run, table, column)
                if value is not None:
                    values[(table, label, column)][seed] = value
                    ids[(table, label, column)][seed] = run.info.run_id
                    out.seeds.add(seed)
            if TABLES[table].kind == "timing" and HARDWARE_TAG in tags:
                out.hardware.add(tags[HARDWARE_TAG])
    out.values, out.runs = dict(values), dict(ids)
    searches = client.search_runs([found.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'search'",
                                  order_by=["attributes.start_time ASC"])
    for search in searches:
        out.commands.append(search.data.tags.get("command", ""))
        layout = _layout(client, search.info.run_id)
        out.skipped.update(layout.get("skipped", {}))
    return out


def _layout(client: MlflowClient, run_id: str) -> dict:
    """A reproduction run's plan (the cells, and the slots it left out with the reason)."""
    try:
        path = client.download_artifacts(run_id, "search_space.json")
        with open(path) as f:
            return json.load(f)
    except Exception:  # an older or foreign run without the plan
        return {}
