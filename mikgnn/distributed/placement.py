"""Placement groups that stopped trials leave behind, found from Ray's own records and removed.

The hang of the main job (issue 11), as Ray's state showed it: a Tune trial runs a Ray Train
V2 ``TrainController`` actor, and that controller creates its worker group's placement group
(``WorkerGroup._create_placement_group``) and then waits up to 60 s for it. Only once the
worker group has started is the group registered with Train's own ``PlacementGroupCleaner``.
When Tune stops or kills the trial inside that window (ASHA at a rung, the search ending, a
dying controller retrying after its workers died), the controller dies and its group is
registered nowhere. A placement group that is not detached lives as long as its creator's
*job*, not its creator actor (GCS: ``IsPlacementGroupLifetimeDone`` needs both dead), so the
group keeps its CPUs for the rest of the search. Each new trial's controller then asks for a
group that can never be placed, and the search waits forever with its trials RUNNING, as seen.

The GCS record of a group names its creator actor and whether that actor is dead
(``ray_workarounds.placement_group_records``). A group of
this job whose creator actor is dead is an orphan: no one can schedule on it any more. The
search removes orphans every few seconds while it runs (``reap_orphans``, from the search's
Tune callback) and, once it ends, every group its job still holds (``release_job_placement_groups``).
Groups created by the driver itself (Tune's trial groups) have no creator actor and are never
orphans. A Ray placement group id ends with its job's id (Ray's ID specification), which is how
the job finds its own groups without touching other jobs' groups on a shared cluster.
"""

from __future__ import annotations

import time

import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group

from mikgnn.distributed.ray_workarounds import LIVE_STATES, GroupRecord, placement_group_records


def _remove(pg_id: str) -> None:
    remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(pg_id)))


def reap_orphans(job_id: str | None = None) -> list[GroupRecord]:
    """Remove this job's placement groups whose creator actor is dead; returns them."""
    job_id = job_id or ray.get_runtime_context().get_job_id()
    orphans = [g for g in placement_group_records(job_id) if g.orphaned]
    for group in orphans:
        _remove(group.id)
    return orphans


def job_placement_groups(job_id: str) -> list[str]:
    """Ids of the live placement groups created by the job ``job_id`` (hex)."""
    return [g.id for g in placement_group_records(job_id) if g.state in LIVE_STATES]


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
            _remove(pg_id)
        removed += len(leftovers)
        now = time.monotonic()
        if leftovers:
            quiet_since = now
        elif now - quiet_since >= settle_s:
            break
        time.sleep(poll_s)
    return removed
