"""The local Ray cluster that ``mikgnn.distributed.cluster.connect`` starts."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.ray


def test_local_workers_are_not_niced_below_the_users_other_work(ray_local):
    """Ray's default (nice 15) starves trials on a busy machine; ours run at the user's priority."""

    @ray_local.remote(num_cpus=0)
    def niceness() -> int:
        return os.nice(0)

    assert ray_local.get(niceness.remote(), timeout=60) == os.nice(0)
