"""The local Ray cluster that ``mikgnn.distributed.cluster.connect`` starts."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = pytest.mark.ray


def test_local_workers_are_not_niced_below_the_users_other_work(ray_local):
    """Ray's default (nice 15) starves trials on a busy machine; ours run at the user's priority."""

    @ray_local.remote(num_cpus=0)
    def niceness() -> int:
        return os.nice(0)

    assert ray_local.get(niceness.remote(), timeout=60) == os.nice(0)


def test_a_sigterm_after_connect_is_a_ctrl_c_before_and_after_a_search(ray_local, tmp_path):
    """After ray.init a SIGTERM aborted the driver (no ``finally``); connect() makes it take
    Ctrl-C's path, whatever handles SIGINT at that moment: Tune's own during a search, else
    Python's KeyboardInterrupt, also after a search (``sigint_kept``: Tune leaves its handler)."""
    from ray import tune

    from mikgnn.distributed.cluster import connect, sigint_kept

    signal.signal(signal.SIGINT, signal.default_int_handler)  # a process where no search ran yet
    connect()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs between bytecodes: this sleep is interrupted

    def trial(config):
        tune.report({"done": True})

    with sigint_kept():
        tune.Tuner(tune.with_resources(trial, {"cpu": 0.25}),
                   run_config=tune.RunConfig(name="signals", storage_path=str(tmp_path))).fit()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))  # as Tune's during a search
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert caught == [signal.SIGINT]
