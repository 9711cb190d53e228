"""Ray's internals stay in ``mikgnn/distributed/ray_workarounds.py``, and its functions do what
the project relies on against a real Ray. The loopback node and process group, the dashboard's
start limit and the autoscaler's report are checked where they matter (each function's
docstring names its test)."""

from __future__ import annotations

import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INTERNALS = re.compile(r"ray\._private|ray\.[\w.]*\._internal|_private\.|from ray[\w.]* import (?:[\w, ]*, )?_\w"
                       r"|ray_constants|temporary_state|_internal_kv")


def test_no_module_but_ray_workarounds_touches_rays_internals():
    found = []
    for path in [*(REPO / "mikgnn").rglob("*.py"), *(REPO / "pipelines").rglob("*.py")]:
        if path.name == "ray_workarounds.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if INTERNALS.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
    assert INTERNALS.search((REPO / "mikgnn/distributed/ray_workarounds.py").read_text())  # the pattern bites


def test_a_trial_that_never_started_has_no_actor():
    from ray.tune.experiment import Trial

    from mikgnn.distributed.ray_workarounds import trial_actor

    assert trial_actor(Trial("some_trainable", stub=True)) is None


def test_a_group_whose_creator_died_is_an_orphan_and_is_removed(ray_local):
    ray = ray_local
    from mikgnn.distributed.placement import reap_orphans
    from mikgnn.distributed.ray_workarounds import placement_group_records

    @ray.remote(num_cpus=0)
    class Creator:
        def create(self) -> str:
            group = ray.util.placement_group([{"CPU": 0.01}])
            ray.get(group.ready())
            return group.id.hex()

    job = ray.get_runtime_context().get_job_id()
    driver_group = ray.util.placement_group([{"CPU": 0.01}])
    ray.get(driver_group.ready())
    creator = Creator.remote()
    orphan = ray.get(creator.create.remote())
    try:
        records = {r.id: r for r in placement_group_records(job)}
        assert records[orphan].creator_actor is not None and not records[orphan].orphaned
        assert records[driver_group.id.hex()].creator_actor is None  # a driver's group is never an orphan
        ray.kill(creator)
        deadline = time.monotonic() + 60
        while not {r.id: r for r in placement_group_records(job)}[orphan].orphaned:
            assert time.monotonic() < deadline, "the GCS never marked the creator dead"
            time.sleep(0.2)
        assert [g.id for g in reap_orphans(job)] == [orphan]
        table = ray.util.placement_group_table()
        assert table[orphan]["state"] == "REMOVED" and table[driver_group.id.hex()]["state"] == "CREATED"
    finally:
        ray.util.remove_placement_group(driver_group)
