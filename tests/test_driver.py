"""A search whose driver was killed outright is ended by the next search on the host
(``distributed.driver``, ``tracking.end_orphaned_searches``): real processes, a sqlite MLflow."""

from __future__ import annotations

import subprocess
import sys

from mlflow.tracking import MlflowClient

from mikgnn.distributed.driver import driver_alive, driver_identity
from mikgnn.distributed.tracking import DRIVER_TAG, FAILURE_TAG, KIND_TAG, SEARCH_TAG, open_search_run


def _dead_identity() -> str:
    """The identity of a process that has since ended (read while it lived)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = driver_identity(child.pid)
    child.communicate(b"")
    return identity


def test_a_driver_is_alive_while_its_process_is_and_unknown_on_another_host():
    me = driver_identity()
    assert driver_alive(me) is True
    assert driver_alive(_dead_identity()) is False
    host, pid, start = me.rsplit(":", 2)
    assert driver_alive(f"{host}:{pid}:{int(start) + 1}") is False  # the pid, given to another process
    assert driver_alive(f"elsewhere-{host}:{pid}:{start}") is None
    assert driver_alive("") is None and driver_alive("a:b:c") is None


def test_a_new_search_ends_the_runs_of_a_search_whose_driver_was_killed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("reproduce-music")
    host = driver_identity().rsplit(":", 2)[0]

    def search(name: str, driver: str | None):
        tags = {KIND_TAG: "search", SEARCH_TAG: name} | ({DRIVER_TAG: driver} if driver else {})
        run = client.create_run(exp, tags=tags).info.run_id
        trial = client.create_run(exp, tags={SEARCH_TAG: name, KIND_TAG: "trial"}).info.run_id
        return run, trial

    dead = _dead_identity()
    killed, killed_trial = search("killed", dead)
    finished = client.create_run(exp, tags={SEARCH_TAG: "killed", KIND_TAG: "trial"}).info.run_id
    client.set_terminated(finished, status="FINISHED")
    running, running_trial = search("running", driver_identity())
    remote, remote_trial = search("remote", f"elsewhere-{host}:1:1")
    old, old_trial = search("old", None)  # from before the driver tag

    new = open_search_run(uri, "reproduce-music", "new", "reproduce.py --dataset music", {})

    for run in (killed, killed_trial):
        ended = client.get_run(run)
        assert ended.info.status == "KILLED", run
        reason = ended.data.tags[FAILURE_TAG]
        assert f"process {dead.rsplit(':', 2)[1]} on {host}" in reason and "found by new" in reason
    assert client.get_run(finished).info.status == "FINISHED"
    for run in (running, running_trial, remote, remote_trial, old, old_trial):
        assert client.get_run(run).info.status == "RUNNING", run
    assert client.get_run(new).data.tags[DRIVER_TAG] == driver_identity()
