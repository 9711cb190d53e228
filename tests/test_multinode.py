"""A real two-node Ray cluster on this machine: `ray start --head` and a second `ray start
--address=...`, 2 logical CPUs each. pipelines/tune.py runs against it unchanged, its trials
complete, and every trial's two Train workers ran one on each node.

The second node runs in its own mount namespace (`unshare -m`, when permitted) with a private
tmpfs over one folder: a local path that one node does not see, like a node-local disk on a
real cluster. Given as --storage-path, tune.py stops with an error naming the path and the
node; an MLflow store there serves the search, which only the driver writes. Every process
the test started is stopped, and only those."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, write_movie
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
SPACE = """theta:  {type: uniform, low: -1.0, high: 1.0}
n:      {type: choice, values: [2, 4]}
h:      {type: choice, values: [1]}
lambda: {type: loguniform, low: 1.0e-7, high: 1.0e-4}
lr:     {type: loguniform, low: 1.0e-3, high: 1.0e-2}
"""


def _can_unshare() -> bool:
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


def _env() -> dict:
    # A node joining a cluster started by `ray start` authenticates with the token in ~/.ray.
    return os.environ | {"RAY_AUTH_MODE": "token"}


def _nodes(address: str) -> list[str]:
    script = (f"import json, ray; ray.init(address={address!r}, log_to_driver=False); "
              "print(json.dumps(sorted(n['NodeID'] for n in ray.nodes() if n['Alive'])))")
    out = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two Ray nodes, each `ray start --block` in its own process group; yields (address, private dir)."""
    work = tmp_path_factory.mktemp("multinode")
    private = work / "node2-only"
    private.mkdir()
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "2", "--block", "--disable-usage-stats"]
    started = []
    current = Path("/tmp/ray/ray_current_cluster")  # `ray start --head` records its address here
    previous = current.read_text() if current.is_file() else None

    def start(cmd: list[str]) -> None:
        started.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True))

    try:
        start([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
               f"--dashboard-port={free_port()}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--ray-client-server-port={free_port()}", *common])
        join = [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common]
        isolated = _can_unshare()
        if isolated:  # the second node gets a private tmpfs over `private`
            join = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    f'mount -t tmpfs tmpfs "{private}" && exec "$0" "$@"', *join]
        deadline = time.time() + 120
        while True:
            time.sleep(3)
            try:
                if len(_nodes(address)) >= 1:
                    break
            except AssertionError:
                if time.time() > deadline:
                    raise
        start(join)
        while len(_nodes(address)) < 2:
            assert time.time() < deadline, "the second Ray node did not join"
            time.sleep(2)
        yield address, (private if isolated else None), work
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(started):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        time.sleep(2)
        for proc in started:  # nothing of the process groups we started survives
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if previous is None:
            current.unlink(missing_ok=True)
        else:
            current.write_text(previous)


def _tune(address: str, work: Path, *extra: str) -> subprocess.CompletedProcess:
    (work / "space.yaml").write_text(SPACE)
    args = ["--dataset", "movie", "--data-root", str(work / "raw"), "--processed", str(work / "processed"),
            "--space", str(work / "space.yaml"), "--epochs", "2", "--set", "eval_users=50", "--address", address]
    if "--tracking-uri" not in extra:
        args += ["--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"]
    args += extra
    return subprocess.run([sys.executable, str(REPO / "pipelines" / "tune.py"), *args], env=_env(),
                          capture_output=True, text=True, timeout=600)


def test_tune_runs_on_two_nodes_and_uses_both(cluster):
    """Two workers per trial, one on each node; the MLflow store lies where only the driver
    sees it (when the second node has a private folder), which it alone writes."""
    address, private, work = cluster
    write_movie(work / "raw", n_users=60)
    store = f"sqlite:///{(private or work) / 'mlflow.db'}"
    done = _tune(address, work, "--num-samples", "2", "--workers", "2", "--set", "placement_strategy=SPREAD",
                 "--set", "scheduler=fifo", "--storage-path", str(work / "ray_results"), "--set", "name=two-nodes",
                 "--tracking-uri", store, "--set", "diagnostics=true")  # diagnostics: each worker's memory
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best configuration:" in done.stdout
    nodes = _nodes(address)
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("movie").experiment_id],
                              filter_string="tags.`mikgnn.kind` = 'trial'")
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED" and "test/auc" in run.data.metrics
        workers = run.data.tags["mikgnn.worker_nodes"].split(",")
        assert sorted(workers) == nodes  # rank 0 on one node, rank 1 on the other
        assert run.data.metrics["worker1/peak_rss_mib"] > 0


def test_a_path_one_node_cannot_see_is_refused(cluster):
    address, private, work = cluster
    if private is None:
        pytest.skip("no mount namespace here (unshare -m not permitted): every node sees every path")
    write_movie(work / "raw", n_users=60)
    done = _tune(address, work, "--num-samples", "1", "--storage-path", str(private / "results"),
                 "--set", "name=blind")
    assert done.returncode == 2
    assert f"--storage-path {private / 'results'}" in done.stderr and "do not see" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (private / "results" / "blind").exists()  # stopped before any trial started
