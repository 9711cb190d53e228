"""The main job's hang (issue 11), reproduced on a small search, and the watchdog behind its fix.

The cause, from Ray's state: a Train controller that dies between creating its worker group's
placement group and starting the group leaves that group alive for the rest of its job, holding
CPUs that every later trial waits for. The first test plants exactly such a group in the search's
own job, then runs the search: before the fix it waited forever (Train retries a worker group it
cannot place without end); now the group is removed within seconds and every trial trains.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
SPACE = """theta:  {type: uniform, low: -1.0, high: 1.0}
n:      {type: choice, values: [4, 8]}
h:      {type: choice, values: [1]}
lr:     {type: loguniform, low: 4.0e-4, high: 1.0e-2}
"""

ORPHAN_THEN_SEARCH = """
import sys, ray
sys.path.insert(0, sys.argv[1] + "/pipelines")
from mikgnn.distributed.cluster import connect
connect(sys.argv[2])

@ray.remote(num_cpus=0)
class DyingController:  # a Train controller: it creates its workers' group, then Tune kills it
    def make_group(self, cpus):
        self.group = ray.util.placement_group([{"CPU": cpus}])
        ray.get(self.group.ready())
        return self.group.id.hex()

controller = DyingController.remote()
orphan = ray.get(controller.make_group.remote(float(ray.cluster_resources()["CPU"]) - 1.0))
ray.kill(controller)
print("orphan", orphan, flush=True)
import tune
raise SystemExit(tune.main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def processed(shared_data, ray_local, tmp_path_factory) -> Path:
    """music, prepared before any CPU is taken away (a search reuses it: no Ray Data job)."""
    from mikgnn.datasets import get_dataset
    from mikgnn.distributed.prepare import prepare
    from mikgnn.storage import resolve

    folder = tmp_path_factory.mktemp("guard") / "processed"
    prepare(get_dataset("music", str(shared_data)), resolve(folder), 0)
    return folder


def _args(work: Path, shared_data: Path, processed: Path, name: str, samples: int, *extra: str) -> list[str]:
    (work / "space.yaml").write_text(SPACE)
    return ["--dataset", "music", "--data-root", str(shared_data), "--processed", str(processed),
            "--space", str(work / "space.yaml"), "--num-samples", str(samples), "--epochs", "2",
            "--set", "eval_users=100", "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
            "--storage-path", str(work / "ray_results"), "--set", f"name={name}", "--set", "max_concurrent=1", *extra]


def _runs(work: Path, kind: str) -> list:
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    exp = client.get_experiment_by_name("music")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`mikgnn.kind` = '{kind}'")


def test_an_orphaned_placement_group_no_longer_hangs_the_search(shared_data, processed, ray_local, tmp_path):
    address = ray_local.get_runtime_context().gcs_address
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", ORPHAN_THEN_SEARCH, str(REPO), address,
                               *_args(tmp_path, shared_data, processed, "orphan", 2, "--address", address)],
                              capture_output=True, text=True, timeout=420, cwd=REPO)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the search hung behind the orphaned placement group ({time.monotonic() - start:.0f} s): "
                    f"{(exc.stderr or b'')[-2000:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    orphan = done.stdout.split("orphan ", 1)[1].split()[0]
    assert f"removed placement group {orphan}" in done.stderr
    assert ray_local.util.placement_group_table()[orphan]["state"] == "REMOVED"
    trials = _runs(tmp_path, "trial")
    assert len(trials) == 2
    for run in trials:  # every trial trained for real
        assert run.info.status in ("FINISHED", "KILLED"), run.data.tags
        assert "valid/recall_at_20" in run.data.metrics and "valid/auc" in run.data.metrics


def test_the_watchdog_stops_a_trial_that_waits_and_names_what_for(shared_data, processed, ray_local, tmp_path):
    """A placement group of another, live job holds the CPUs a trial's Train workers need:
    nothing can fix that from inside the search, so the watchdog stops the trial and says why.
    Only a trial of more than one worker creates a group of its own (a one-worker trial trains
    inside Tune's), so this one has two workers of 0.25 CPU; the hold leaves 0.5 CPU: room for
    the trial's driver (0.25) but not for both workers."""
    hold = ray_local.util.placement_group([{"CPU": float(ray_local.cluster_resources()["CPU"]) - 0.5}])
    ray_local.get(hold.ready())
    try:
        start = time.monotonic()
        done = subprocess.run([sys.executable, str(REPO / "pipelines" / "tune.py"),
                               *_args(tmp_path, shared_data, processed, "stall", 1, "--set", "stall_timeout=20",
                                      "--workers", "2", "--set", "cpus_per_worker=0.25",
                                      "--address", ray_local.get_runtime_context().gcs_address)],
                              capture_output=True, text=True, timeout=300, cwd=REPO)
        wall = time.monotonic() - start
    finally:
        ray_local.util.remove_placement_group(hold)
    assert done.returncode == 1, done.stderr[-3000:]
    line = next(x for x in done.stderr.splitlines() if x.startswith("error: trial "))
    assert "stopped: no report for" in line and "placement group" in line and "cannot place" in line
    assert wall < 240
    (trial,) = _runs(tmp_path, "trial")
    assert trial.info.status == "FAILED"
    assert "placement group" in trial.data.tags["failure_reason"]
    assert "valid/auc" not in trial.data.metrics  # no metric was invented for it
    (search,) = _runs(tmp_path, "search")
    assert search.info.status == "FAILED" and "failed" in search.data.tags["failure_reason"]


SECOND_RAY = """
import sys, ray
ray.init(address="local", num_cpus=1, include_dashboard=False)
print("up", flush=True)
sys.stdin.read()
"""


def test_the_watchdog_reads_its_own_clusters_tasks_beside_another_ray(ray_local):
    """Two searches on one machine run two local Rays. Ray's state API, asked without an
    address, refuses to choose between them ("Found multiple active Ray instances"): the
    watchdog then knew nothing and stopped three working movie1m cells of a reproduction as
    stalled. It asks its own cluster: a pending actor of this job is named, beside another Ray,
    and after more finished tasks than one list holds (a long search's job; the suite's too)."""
    from mikgnn.distributed import watchdog

    other = subprocess.Popen([sys.executable, "-c", SECOND_RAY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "up"

        @ray_local.remote(num_cpus=0)
        def done() -> None:
            return None

        ray_local.get([done.remote() for _ in range(1_100)])

        @ray_local.remote(num_cpus=10_000)
        class Unplaceable:
            pass

        waiting = Unplaceable.remote()
        deadline = time.monotonic() + 60
        while True:
            line = watchdog.diagnose(ray_local.get_runtime_context().get_job_id())
            if "Unplaceable" in line or time.monotonic() > deadline:
                break
            time.sleep(1)
        ray_local.kill(waiting)
    finally:
        other.stdin.close()
        other.wait(timeout=60)
    # this job's own waiting work: the actor (a task an earlier test of the suite left pending may join it)
    assert line.startswith("waiting for resources for ") and "Unplaceable.__init__" in line, line
