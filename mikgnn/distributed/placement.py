"""Placement groups that a finished search leaves behind.

When Tune stops a trial (ASHA, or the search ending), it kills the trial's actor, and Ray
Train V2's controller dies with it. A controller that is already dying can still see its
workers die, retry, and ask for a new placement group a moment before it exits. Ray then
never removes that group (ray-project/ray#54305; Ray Train's own cleaner only knows groups
whose worker group started). Each such group holds a trial's CPUs for the rest of the
cluster's life, and a later job waits for them.

So when a search ends, the driver removes the placement groups its own job still holds.
Every trial is over by then, so none of them is in use. A Ray placement group id ends with
the id of the job that created it (Ray's ID specification), which is how the job finds its
own groups without touching other jobs' groups on a shared cluster.
"""

from __future__ import annotations

import time

import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group

LIVE_STATES = ("PENDING", "PREPARED", "CREATED", "RESCHEDULING")


def job_placement_groups(job_id: str) -> list[str]:
    """Ids of the live placement groups created by the job ``job_id`` (hex)."""
    return [pg_id for pg_id, pg in ray.util.placement_group_table().items()
            if pg["state"] in LIVE_STATES and pg_id.endswith(job_id)]


def release_job_placement_groups(settle_s: float = 3.0, timeout_s: float = 30.0, poll_s: float = 0.25) -> int:
    """Remove this job's placement groups until none has appeared for ``settle_s`` seconds
    (a dying controller may still create one), or ``timeout_s`` has passed. Returns how
    many were removed. Call it only when none of this job's trials runs any more."""
    job_id = ray.get_runtime_context().get_job_id()
    removed, start = 0, time.monotonic()
    quiet_since = start
    while time.monotonic() - start < timeout_s:
        leftovers = job_placement_groups(job_id)
        for pg_id in leftovers:
            remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(pg_id)))
        removed += len(leftovers)
        now = time.monotonic()
        if leftovers:
            quiet_since = now
        elif now - quiet_since >= settle_s:
            break
        time.sleep(poll_s)
    return removed
