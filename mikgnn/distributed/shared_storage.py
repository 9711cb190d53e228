"""On a multi-node cluster every node must see the results folder and the processed dataset.

A URI (s3://, gs://, ...) is shared by construction. A local path is shared only when it is a
mount every node has at the same place (NFS, a cluster filesystem, or several nodes on one
machine). That is checked, not assumed: the driver writes a marker file and a task pinned to
each node looks for it. A node that does not see it stops the job before any trial starts,
with an error that names the path and the nodes; without the check, Ray Train fails later,
on the first checkpoint of a worker on another node.
"""

from __future__ import annotations

import os
import uuid

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mikgnn.storage import Location, SharedStorageError


@ray.remote(num_cpus=0)
def _sees(path: str, token: str) -> bool:
    try:
        with open(path) as f:
            return f.read() == token
    except OSError:
        return False


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def check_shared(locations: dict[str, Location]) -> None:
    """Raise SharedStorageError when a local path of ``locations`` (flag -> place) is not seen by
    every alive node. One node, or URIs only: nothing to check."""
    nodes = alive_nodes()
    if len(nodes) < 2:
        return
    for flag, location in locations.items():
        if not location.is_local:
            continue
        location.mkdir()
        token = uuid.uuid4().hex
        marker = location / f".mikgnn-shared-check-{token}"
        marker.write_text(token)
        try:
            seen = ray.get([
                _sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(marker.path, token) for n in nodes
            ])
        finally:
            os.remove(marker.path)
        blind = [f"{n['NodeID'][:12]} ({n['NodeManagerAddress']})" for n, ok in zip(nodes, seen) if not ok]
        if blind:
            raise SharedStorageError(
                f"{flag} {location}: a local folder that {len(blind)} of the cluster's {len(nodes)} nodes "
                f"do not see: {', '.join(blind)}. A multi-node cluster needs storage shared by every node "
                "for results, checkpoints, the processed dataset and a file-backed MLflow store: an s3://, "
                "gs:// or hdfs:// URI, or a folder mounted at the same path on every node (NFS); for MLflow, "
                "a tracking server (--tracking-uri http://host:5000)."
            )
