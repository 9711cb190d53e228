"""Room for one run on an autoscaling cluster (``cluster.yaml``: GPU workers scale from 0).

``plan_concurrency`` refuses a run the cluster cannot hold, before anything is scheduled. On
a cluster started with Ray's autoscaler the nodes a run needs may not be up yet: there the
autoscaler is asked for them (``ray.autoscaler.sdk.request_resources``) and the job waits a
bounded time for them to join, then plans against what joined. Without an autoscaler (a
local Ray, nodes started by hand) nothing will join: the refusal stands at once.
"""

from __future__ import annotations

import time

import ray

from mikgnn.distributed.cluster import plan_concurrency
from mikgnn.distributed.ray_workarounds import autoscaler_names_node_types

SCALE_WAIT_S = 900.0  # a cloud GPU node boots and runs cluster.yaml's setup (torch's CUDA build) in minutes
POLL_S = 5.0


def has_autoscaler() -> bool:
    """Whether the connected cluster can add nodes: the autoscaler's report in the GCS names a node
    type of a config (cluster.yaml's "head", "gpu_worker"), where a cluster without one (a local
    Ray, nodes started by hand) runs Ray's read-only monitor, whose types are its nodes' ids; or
    the cluster runs autoscaler v2."""
    try:
        if autoscaler_names_node_types():
            return True
        from ray.autoscaler.v2.utils import is_autoscaler_v2

        return bool(is_autoscaler_v2(fetch_from_server=True))
    except Exception:  # an older cluster or an unreadable key: no autoscaler to count on
        return False


def room_for_one_run(workers: int, cpus_per_worker: float, gpus_per_worker: float, what: str = "a trial",
                     flag: str = "--workers", wait_s: float = SCALE_WAIT_S) -> int:
    """How many runs fit at once (``plan_concurrency``); on an autoscaling cluster short of one
    run's resources, after asking the autoscaler for them and waiting up to ``wait_s`` seconds.
    Raises ValueError, naming what is short, when they do not come."""
    try:
        return plan_concurrency(ray.cluster_resources(), workers, cpus_per_worker, gpus_per_worker, what, flag)
    except ValueError as short:
        if not has_autoscaler():
            raise
        first = short
    from ray.autoscaler.sdk import request_resources

    bundle = {"CPU": cpus_per_worker} | ({"GPU": gpus_per_worker} if gpus_per_worker else {})
    print(f"{first}; asked the cluster's autoscaler for {workers} x {bundle}, waiting up to {wait_s:g} s "
          "for the nodes to join", flush=True)
    request_resources(bundles=[bundle] * workers)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fits = plan_concurrency(ray.cluster_resources(), workers, cpus_per_worker, gpus_per_worker, what,
                                        flag)
                print(f"the autoscaler added the nodes: {fits} run(s) at once", flush=True)
                return fits
            except ValueError as still:
                if time.monotonic() >= deadline:
                    raise ValueError(f"{still}; the cluster's autoscaler was asked for {workers} x {bundle} "
                                     f"and they did not join within {wait_s:g} s (see `ray status`: "
                                     "node types, max_workers, cloud quota)") from None
            time.sleep(POLL_S)
    finally:
        request_resources(bundles=[])  # the run's own demand keeps its nodes from here on
