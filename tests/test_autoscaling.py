"""An autoscaling cluster whose GPU nodes start at 0, as cluster.yaml's do: a job that needs a
GPU asks Ray's autoscaler for it and waits for the node instead of being refused.

The cluster is Ray's own autoscaler with its fake multi-node provider (`RAY_FAKE_CLUSTER=1`):
`ray start --head --autoscaling-config` runs the real monitor, which starts each new node as
raylet processes on this machine, with the node type's logical resources (here a "GPU").
Every process of that cluster is stopped afterwards, and only those.
"""

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
import yaml
from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))

pytestmark = pytest.mark.ray

# The job's side: connect, then ask for room for one run of one worker with that many GPUs.
DRIVER = """
import json, sys, time
import ray
from mikgnn.distributed.autoscaling import room_for_one_run
from mikgnn.distributed.cluster import connect

connect(sys.argv[1])
start = time.monotonic()
try:
    out = {"fits": room_for_one_run(1, 1.0, float(sys.argv[2]), what="a cell", wait_s=float(sys.argv[3]))}
except ValueError as exc:
    out = {"error": str(exc)}
out |= {"gpus": ray.cluster_resources().get("GPU", 0.0), "seconds": time.monotonic() - start}
print("RESULT " + json.dumps(out))
"""


def _env() -> dict:
    return os.environ | {"RAY_AUTH_MODE": "token", "RAY_FAKE_CLUSTER": "1"}


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory):
    """A head of 2 CPUs, no GPU, and a node type of 1 CPU + 1 GPU that scales from 0 to 1."""
    work = tmp_path_factory.mktemp("autoscaling")
    port = free_port()
    config = {
        "cluster_name": "mikgnn-autoscaling-test", "max_workers": 1, "upscaling_speed": 1.0,
        "idle_timeout_minutes": 5,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{port}"},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 2}, "max_workers": 0, "node_config": {}},
            "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "min_workers": 0, "max_workers": 1,
                           "node_config": {}},
        },
        "head_node_type": "ray.head.default", "auth": {"ssh_user": "ubuntu"}, "docker": {},
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }
    (work / "cluster.yaml").write_text(yaml.safe_dump(config))
    current = Path("/tmp/ray/ray_current_cluster")  # `ray start --head` records its address here
    previous = current.read_text() if current.is_file() else None
    # --block in a process group of its own: the head, its monitor and the nodes the monitor
    # starts are that group, stopped together afterwards
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         f"--autoscaling-config={work / 'cluster.yaml'}", "--disable-usage-stats", "--include-dashboard=false",
         f"--ray-client-server-port={free_port()}"],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        while not _status_ok(port):
            assert head.poll() is None, "ray start --head exited"
            assert time.time() < deadline, "the autoscaling head did not come up"
            time.sleep(3)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        deadline = time.time() + 30
        while _group(head.pid) and time.time() < deadline:
            time.sleep(1)
        with contextlib.suppress(ProcessLookupError):  # what outlived SIGTERM
            os.killpg(head.pid, signal.SIGKILL)
        if previous is None:
            current.unlink(missing_ok=True)
        else:
            current.write_text(previous)


def _status_ok(port: int) -> bool:
    """The head's GCS answers and its autoscaler has reported (`ray status` prints its report)."""
    done = subprocess.run([RAY, "status", f"--address=127.0.0.1:{port}"], env=_env(), capture_output=True,
                          text=True, timeout=60)
    return done.returncode == 0 and "Autoscaler status" in done.stdout


def _group(pgid: int) -> list[int]:
    """The live processes of a process group (zombies left out)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                out.append(int(proc.name))
    return out


def _drive(address: str, gpus: float, wait_s: float) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", DRIVER, address, str(gpus), str(wait_s)], env=_env(),
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and line, done.stderr[-3000:]
    return json.loads(line[-1][len("RESULT "):]), done.stdout


def test_a_gpu_the_cluster_lacks_is_asked_of_its_autoscaler_and_waited_for(autoscaling_cluster):
    result, stdout = _drive(autoscaling_cluster, gpus=1, wait_s=240)
    assert result.get("fits") == 1 and result["gpus"] == 1.0, (result, stdout)
    assert "the cluster has 0; asked the cluster's autoscaler for 1 x {'CPU': 1.0, 'GPU': 1.0}" in stdout
    assert "the autoscaler added the nodes: 1 run(s) at once" in stdout


def test_what_no_node_type_provides_is_refused_when_the_wait_ends(autoscaling_cluster):
    """Two GPUs for one worker: no node type has them; the wait is bounded and says why it ended."""
    result, _ = _drive(autoscaling_cluster, gpus=2, wait_s=10)
    assert "a cell needs 2 GPUs (--gpus-per-worker 2)" in result["error"]
    assert "did not join within 10 s" in result["error"] and "ray status" in result["error"]
    assert 10 <= result["seconds"] < 60


def test_a_local_ray_has_no_autoscaler_to_ask(ray_local):
    """Its read-only monitor reports too (within seconds of the start): that is not an autoscaler."""
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    from mikgnn.distributed.autoscaling import has_autoscaler

    deadline = time.time() + 60
    while b"autoscaler_report" not in (_internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS) or b""):
        assert time.time() < deadline, "the local Ray's monitor published no report"
        time.sleep(2)
    assert not has_autoscaler()
