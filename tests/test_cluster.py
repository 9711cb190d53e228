"""The local Ray cluster that ``mikgnn.distributed.cluster.connect`` starts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]


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

    from mikgnn.distributed.cluster import connect
    from mikgnn.distributed.ray_workarounds import sigint_kept

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


def test_the_dashboard_gets_longer_than_rays_60_s_unless_the_user_says(ray_local):
    """On 2 busy cores the dashboard took more than Ray's 60 s and ray.init failed."""
    from ray._private import ray_constants

    from mikgnn.distributed.cluster import DASHBOARD_ENV, DASHBOARD_START_S

    expected = int(os.environ[DASHBOARD_ENV]) if DASHBOARD_ENV in os.environ else DASHBOARD_START_S
    assert ray_constants.RAY_DASHBOARD_STARTUP_TIMEOUT_S == expected >= 60


def test_a_local_ray_that_does_not_start_ends_the_job_with_one_line_and_no_ray_left(tmp_path, shared_data):
    """Ray fails ray.init when its dashboard is not up in time (here: the user's own timeout of
    0 s, so Ray's real failure path runs): the job says so, and how to give it longer, with no
    traceback, exit 1, and no Ray process of that attempt left running."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths fit
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "0"}
    env.pop("RAY_ADDRESS", None)
    try:
        done = subprocess.run([sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", "music",
                               "--data-root", str(shared_data)], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=env)
        time.sleep(3)
        left = [p.parent.name for p in Path("/proc").glob("[0-9]*/cmdline") if _reads(p, str(ray_tmp))]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 1, (done.stdout + done.stderr)[-3000:]
    line = next(x for x in done.stderr.splitlines() if x.startswith("error:"))
    assert line.startswith("error: the local Ray cluster did not start: ") and "dashboard" in line
    assert line.endswith("Ray waited 0 s for its dashboard: on a busy machine set RAY_DASHBOARD_STARTUP_TIMEOUT_S "
                         "higher"), line
    assert "Traceback" not in done.stderr
    assert left == []


def _reads(cmdline: Path, text: str) -> bool:
    """Whether a process's command line (a /proc/PID/cmdline) holds ``text``; gone processes do not."""
    try:
        return text in cmdline.read_bytes().decode(errors="replace")
    except OSError:
        return False
