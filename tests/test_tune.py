"""The main job end to end: pipelines/tune.py on music with a real local Ray, MLflow in sqlite,
an MLflow server on 127.0.0.1 queried over REST and rendered by headless Chromium, and an
interrupted search resumed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import free_port
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
SPACE = """theta:  {type: uniform, low: -1.0, high: 1.0}
n:      {type: choice, values: [2, 4, 8]}
h:      {type: choice, values: [1]}
lambda: {type: loguniform, low: 1.0e-7, high: 1.0e-4}
lr:     {type: loguniform, low: 4.0e-4, high: 1.0e-2}
"""  # holds music's Table 1 point, which a search evaluates first
TABLE1_MUSIC = {"theta": 0.9, "n": 8.0, "h": 1.0, "lambda": 9.1e-5, "lr": 5e-4}


def _args(work: Path, shared_data: Path, name: str, samples: int, *extra: str) -> list[str]:
    (work / "space.yaml").write_text(SPACE)
    return ["--dataset", "music", "--data-root", str(shared_data), "--processed", str(work / "processed"),
            "--space", str(work / "space.yaml"), "--num-samples", str(samples), "--epochs", "3",
            "--set", "eval_users=200", "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
            "--storage-path", str(work / "ray_results"), "--set", f"name={name}", *extra]


def _trial_runs(uri: str, experiment: str = "music") -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial'")


def _tune(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """pipelines/tune.py as a user runs it; a hang fails the test instead of stalling CI."""
    return subprocess.run([sys.executable, str(REPO / "pipelines" / "tune.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def search(shared_data, ray_local, tmp_path_factory):
    work = tmp_path_factory.mktemp("tune")
    address = ray_local.get_runtime_context().gcs_address
    done = _tune(_args(work, shared_data, "t1", 3, "--address", address))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best configuration:" in done.stdout and "test/auc" in done.stdout
    (work / "stdout.txt").write_text(done.stdout)
    return work


def test_the_console_reads_like_a_progress_report(search):
    """Our lines, not Tune's tables: a line per ended trial, progress with the count of trials,
    and a final table of every trial, best first, λ in scientific notation."""
    out = (search / "stdout.txt").read_text()
    lines = out.splitlines()
    assert not {"╭", "│", "+-"} & set("".join(lines)) and "+--" not in out, out
    assert len(lines) <= 60, out
    assert sum(bool(re.match(r"trial \w+ (finished|stopped by ASHA) after epoch \d", line)) for line in lines) == 3
    assert "[3/3 trials done, 0 running" in out
    header = next(i for i, line in enumerate(lines) if line.startswith("trial ") and "status" in line)
    assert lines[header].split()[:4] == ["trial", "status", "theta", "n"]
    rows = lines[header + 1:header + 4]
    recalls = [float(row.split()[-2]) for row in rows]
    assert recalls == sorted(recalls, reverse=True)
    assert all(re.search(r"\d\.\d\de-0\d", row) for row in rows)  # λ: 1e-7 to 1e-4


def test_stopped_trials_leave_no_placement_group(search, ray_local):
    held = [pg for pg in ray_local.util.placement_group_table().values() if pg["state"] == "CREATED"]
    assert held == []  # a leaked group would starve the next trial's Ray Data read forever


OTHER_JOB = """
import sys, ray
from mikgnn.distributed.cluster import connect
connect(sys.argv[1])
pg = ray.util.placement_group([{"CPU": 0.01}])
ray.get(pg.ready())
print(pg.id.hex(), flush=True)
sys.stdin.read()
"""


def test_a_search_removes_only_its_own_job_s_placement_groups(ray_local):
    from mikgnn.distributed.placement import release_job_placement_groups

    address = ray_local.get_runtime_context().gcs_address
    other = subprocess.Popen([sys.executable, "-c", OTHER_JOB, address], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        others = other.stdout.readline().strip()
        assert others, "the other job did not create its placement group"
        mine = ray_local.util.placement_group([{"CPU": 0.01}])
        ray_local.get(mine.ready())
        assert release_job_placement_groups(settle_s=0.5) >= 1
        table = ray_local.util.placement_group_table()
        assert table[mine.id.hex()]["state"] == "REMOVED"
        assert table[others]["state"] == "CREATED"  # another job's group is left alone
    finally:
        other.communicate("", timeout=60)


def test_one_mlflow_run_per_trial(search):
    uri = f"sqlite:///{search / 'mlflow.db'}"
    runs = _trial_runs(uri)
    trial_dirs = [p for p in (search / "ray_results" / "t1").iterdir() if p.name.startswith("run_trial")]
    assert len(runs) == len(trial_dirs) == 3
    assert len({r.data.tags["mikgnn.trial_id"] for r in runs}) == 3
    searched = [{k: float(r.data.params[k]) for k in TABLE1_MUSIC} for r in runs]
    assert searched.count(TABLE1_MUSIC) == 1  # the first trial; the others are sampled
    client = MlflowClient(uri)
    for run in runs:
        params = run.data.params
        assert {"theta", "n", "h", "lambda", "lr", "log10_lambda", "log10_lr", "dataset", "model", "d"} <= set(params)
        assert len(params) <= 20 and abs(10 ** float(params["log10_lambda"]) / float(params["lambda"]) - 1) < 1e-3
        settings = json.loads(Path(client.download_artifacts(run.info.run_id, "settings.json", str(search)))
                              .read_text())
        assert settings["model"]["dim"] == 16 and settings["train"]["batch_size"] == 128
        (dataset,) = client.get_run(run.info.run_id).inputs.dataset_inputs  # provenance: the processed dataset
        assert dataset.dataset.name == "music-seed0" and run.data.tags["mlflow.source.name"] == "tune.py"
        assert run.info.status == "FINISHED"  # ASHA's stops too: the scheduler working, tagged with why
        assert {"valid/auc", "valid/recall_at_20"} <= set(run.data.metrics)  # a real trial, never a placeholder
        assert len(run.data.metrics) <= 20 and not any(k.startswith("attention") for k in run.data.metrics)
        assert "skipped" not in run.data.tags
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "valid/recall_at_20")]
        assert steps == sorted(set(steps)) and steps[0] == 1
        if "mikgnn.early_stopped" in run.data.tags:
            last = max(m.step for m in client.get_metric_history(run.info.run_id, "valid/auc"))
            assert f"after epoch {last}" in run.data.tags["mikgnn.early_stopped"]
        else:
            assert "test/auc" in run.data.metrics and "test/recall_at_20" in run.data.metrics
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"recall_at_k.png", "manifest.json", "best_checkpoint"} <= artifacts
    searches = client.search_runs([runs[0].info.experiment_id], filter_string="tags.`mikgnn.kind` = 'search'")
    assert len(searches) == 1 and searches[0].info.status == "FINISHED"
    assert searches[0].data.tags["best_trial"] in {r.data.tags["mikgnn.trial_id"] for r in runs}
    assert {"best.theta", "best.n", "best.h", "best.lambda", "best.lr"} <= set(searches[0].data.tags)
    assert "tune.py" in searches[0].data.tags["command"]
    assert searches[0].data.params == {"space": str(search / "space.yaml"), "search": "optuna", "scheduler": "asha",
                                       "trials": "3", "dataset": "music", "model": "mikgnn", "epochs": "3",
                                       "workers_per_trial": "1"}
    assert "best/valid/recall_at_20" in searches[0].data.metrics and len(searches[0].data.metrics) <= 20
    artifacts = {a.path for a in client.list_artifacts(searches[0].info.run_id)}
    assert {"trials.csv", "parallel_coordinates.png", "parallel_coordinates.html"} <= artifacts
    table = Path(client.download_artifacts(searches[0].info.run_id, "trials.csv", str(search))).read_text()
    assert len(table.splitlines()) == 4 and table.splitlines()[1].startswith(searches[0].data.tags["best_trial"])
    recorded = client.download_artifacts(searches[0].info.run_id, "settings.txt", str(search))
    lines = Path(recorded).read_text().splitlines()
    assert "train.epochs = 3  (flag)" in lines and "train.protocol = 'sampled'  (job)" in lines
    assert "train.eval_users = 200  (flag)" in lines and "model.dim = 16  (table1)" in lines


SERVER_START_S = 300  # a loaded 2-core machine has taken over a minute to start one


@contextlib.contextmanager
def _mlflow_server(store: str, *extra: str):
    """A real `mlflow server` on a free loopback port, answering /health: yields its address."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, *extra,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=5)
                break
            except OSError:
                assert server.poll() is None, f"mlflow server exited with {server.returncode}"
                assert time.monotonic() < deadline, f"mlflow server did not answer /health in {SERVER_START_S} s"
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _dom(chromium: str, profile: Path, url: str) -> str:
    """The page as headless Chromium renders it after 30 s of virtual time."""
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120).stdout


def test_mlflow_server_rest_and_browser(search, tmp_path):
    """Over REST, the search's run and its 3 trials' runs nested under it; in a browser, the runs
    list shows the search with its trials folded under it, and the compare page of the trials
    shows the searched params under the paper's names."""
    with _mlflow_server(f"sqlite:///{search / 'mlflow.db'}") as base:
        experiment = json.load(urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=music"))["experiment"]
        request = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", method="POST",
                                         data=json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
                                         headers={"Content-Type": "application/json"})
        runs = json.load(urllib.request.urlopen(request))["runs"]
        tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs}
        (search_id,) = [i for i, t in tags.items() if t.get("mikgnn.kind") == "search"]
        trials = {r["info"]["run_id"]: r["info"]["run_name"] for r in runs if r["info"]["run_id"] != search_id}
        assert len(trials) == 3 and all(tags[i]["mlflow.parentRunId"] == search_id for i in trials)
        chromium = shutil.which("chromium")
        if chromium is None:
            pytest.skip("Debian's chromium is not installed (scripts/install_test_deps.sh installs it)")
        listed = _dom(chromium, tmp_path / "profile", f"{base}/#/experiments/{experiment['experiment_id']}/runs")
        assert "search t1" in listed and not any(name in listed for name in trials.values()), listed[-2000:]
        compare = urllib.parse.quote(json.dumps(list(trials)))
        page = _dom(chromium, tmp_path / "profile",
                    f"{base}/#/compare-runs?runs={compare}&experiments=%5B%22{experiment['experiment_id']}%22%5D")
        assert all(name in page for name in trials.values()), page[-2000:]
        assert all(param in page for param in ("theta", "log10_lambda", "log10_lr")), page[-2000:]


def test_interrupted_search_resumes_with_each_trial_once(shared_data, ray_local, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"),
           *_args(tmp_path, shared_data, "t2", 4, "--set", "max_concurrent=1", "--address", address)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        time.sleep(2)
        try:
            done = [r for r in _trial_runs(uri) if r.info.status != "RUNNING"]
        except Exception:  # the store is still being created by the search
            continue
        if done:
            break
    assert first.poll() is None, "the search ended before it could be interrupted"
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 130 and "--resume t2" in out  # not a completed search, and how to go on
    interrupted = _trial_runs(uri)
    assert len(interrupted) < 4 and all(r.info.status != "RUNNING" for r in interrupted)
    client = MlflowClient(uri)
    search_run = client.search_runs([interrupted[0].info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert search_run[0].info.status == "KILLED"
    second = _tune([*cmd[2:], "--resume"])
    assert second.returncode == 0, second.stderr[-3000:]
    runs = _trial_runs(uri)
    ids = [r.data.tags["mikgnn.trial_id"] for r in runs]
    assert len(ids) == len(set(ids)) == 4
    assert all(r.info.status != "RUNNING" for r in runs)
    for run in runs:  # a resumed trial logs no epoch twice
        for key in ("valid/auc", "test/auc"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), (key, steps)
    search_run = client.search_runs([runs[0].info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert len(search_run) == 1 and search_run[0].info.status == "FINISHED"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_while_every_trial_runs_is_an_interruption_not_a_finished_search(shared_data, ray_local, tmp_path,
                                                                                    signum):
    """Two trials, both running (FIFO, no trial waiting): Tune marks them terminated on its way
    out, which once passed for a finished search (exit 0, FINISHED, "best configuration")."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"),
           *_args(tmp_path, shared_data, "both", 2, "--set", "scheduler=fifo", "--epochs", "40",
                  "--address", ray_local.get_runtime_context().gcs_address)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:  # until both trials have checkpointed an epoch
        if len(list((tmp_path / "ray_results" / "both").glob("run_trial_*/checkpoint_*"))) >= 2:
            break
        time.sleep(0.5)
    assert first.poll() is None, "the search ended before it could be interrupted"
    first.send_signal(signum)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 130 and "--resume both" in out, out[-2000:]
    assert "best configuration so far" in out
    client = MlflowClient(uri)
    (search,) = client.search_runs([client.get_experiment_by_name("music").experiment_id],
                                   "tags.`mikgnn.kind` = 'search'")
    assert search.info.status == "KILLED" and all(r.info.status == "KILLED" for r in _trial_runs(uri))


def test_a_search_killed_with_sigkill_resumes_without_repeating_a_finished_trial(shared_data, ray_local, tmp_path):
    """SIGKILL gives the driver no chance to record anything: the resumed search trains only
    what was not finished, ends every run it left RUNNING, and logs no metric twice."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"),
           *_args(tmp_path, shared_data, "k9", 3, "--set", "max_concurrent=1", "--address", address)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, finished = time.time() + 300, []
    while time.time() < deadline and first.poll() is None and not finished:
        time.sleep(1)
        with contextlib.suppress(Exception):  # the store may still be being created
            finished = [r for r in _trial_runs(uri) if r.info.status == "FINISHED"]
    assert first.poll() is None and finished, "the search ended before it could be killed"
    first.kill()
    first.wait(timeout=60)
    done = {r.data.tags["mikgnn.trial_id"]: r.info.run_id for r in finished}
    second = _tune([*cmd[2:], "--resume"])
    assert second.returncode == 0, second.stderr[-3000:]
    client = MlflowClient(uri)
    runs = _trial_runs(uri)
    ids = [r.data.tags["mikgnn.trial_id"] for r in runs]
    assert len(ids) == len(set(ids)) and all(r.info.status in ("FINISHED", "KILLED") for r in runs)
    # a trial started after Tune's last snapshot is not resumed: its run ends KILLED, saying so
    orphans = [r for r in runs if "stopped without ending it" in r.data.tags.get("failure_reason", "")]
    assert len(runs) - len(orphans) == 3 and all(r.info.status == "KILLED" for r in orphans)
    for run in runs:
        if run.data.tags["mikgnn.trial_id"] in done:  # trained once, before the kill
            assert run.info.run_id == done[run.data.tags["mikgnn.trial_id"]]
        for key in ("valid/auc", "test/auc"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), (key, steps)
    searches = client.search_runs([runs[0].info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert [s.info.status for s in searches] == ["FINISHED"]


def test_a_search_whose_loss_is_nan_fails_and_says_so(shared_data, ray_local, tmp_path):
    """lr 1e38 makes the loss NaN at once: the trial stops as FAILED with its reason, no
    metric is invented for it, and the search exits 1 with its run FAILED, naming no best."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = _args(tmp_path, shared_data, "nan", 1, "--address", ray_local.get_runtime_context().gcs_address)
    (tmp_path / "space.yaml").write_text(SPACE.replace("lr:     {type: loguniform, low: 4.0e-4, high: 1.0e-2}",
                                                       "lr:     {type: choice, values: [1.0e+38]}"))
    done = _tune(args)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "best configuration" not in done.stdout
    (trial,) = _trial_runs(uri)
    assert trial.info.status == "FAILED" and "diverged" in trial.data.tags["failure_reason"], trial.data.tags
    assert "test/auc" not in trial.data.metrics
    client = MlflowClient(uri)
    (search,) = client.search_runs([trial.info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert search.info.status == "FAILED" and search.data.tags.get("failure_reason")


def test_a_grid_space_sweeps_every_point_once(shared_data, ray_local, tmp_path):
    """A sweep (Tables 8 and 9): one trial per grid value, no extra Table 1 trial, each trained."""
    args = _args(tmp_path, shared_data, "sweep", 1, "--set", "search=random", "--set", "scheduler=fifo",
                 "--address", ray_local.get_runtime_context().gcs_address)
    (tmp_path / "sweep.yaml").write_text("field: {type: grid, values: [[2, 1], [4, 1]]}\n")
    args[args.index("--space") + 1] = str(tmp_path / "sweep.yaml")
    args[args.index("--epochs") + 1] = "2"
    done = _tune(args)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted((r.data.params["n"], r.data.params["h"]) for r in runs) == [("2", "1"), ("4", "1")]
    assert all(r.info.status == "FINISHED" and "test/recall_at_20" in r.data.metrics for r in runs)


def test_a_password_in_the_tracking_uri_is_never_recorded(shared_data, tmp_path):
    """The password of --tracking-uri http://user:PASSWORD@host reaches neither the MLflow
    store, nor the output, nor the storage path (Tune's pickles), nor Ray's logs; the trials
    still log to the server (credentials from the environment, on a fresh local Ray)."""
    secret = f"pw{uuid.uuid4().hex}"
    store = tmp_path / "server"
    store.mkdir()
    artifacts = ("--serve-artifacts", "--artifacts-destination", str(store / "artifacts"))
    with _mlflow_server(f"sqlite:///{store / 'mlflow.db'}", *artifacts) as base:
        args = _args(tmp_path, shared_data, "secret", 2)
        args[args.index("--tracking-uri") + 1] = base.replace("http://", f"http://alice:{secret}@")
        args[args.index("--epochs") + 1] = "2"
        started = time.time()
        done = _tune(args)
        assert done.returncode == 0, done.stderr[-3000:]
        runs = _trial_runs(base)
        assert len(runs) == 2 and all("valid/auc" in r.data.metrics for r in runs)
        search = MlflowClient(base).search_runs(
            [runs[0].info.experiment_id], filter_string="tags.`mikgnn.kind` = 'search'")[0]
        assert "alice:***" not in search.data.tags["command"] and "***@127.0.0.1" in search.data.tags["command"]
    # artifacts follow the server (uploaded through it), not the client's working folder
    served = {p.name for p in (store / "artifacts").rglob("*")}
    assert {"recall_at_k.png", "state.pt", "manifest.json"} <= served, sorted(served)[:20]
    assert not (tmp_path / "mlruns").exists()
    assert secret not in done.stdout + done.stderr
    logs = [p for p in Path("/tmp/ray").glob("session_*/logs/**/*") if p.is_file() and p.stat().st_mtime >= started]
    for path in [*tmp_path.rglob("*"), *logs]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_custom_folder_is_searched_in_the_generic_space(ray_local, tmp_path):
    """A dataset of one's own has no shipped space: the search says it uses default.yaml."""
    from conftest import write_custom

    folder = write_custom(tmp_path / "mine")
    done = _tune(["--dataset", str(folder), "--num-samples", "1", "--epochs", "1",
                  "--processed", str(tmp_path / "processed"), "--storage-path", str(tmp_path / "ray_results"),
                  "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--set", "protocol=full",
                  "--address", ray_local.get_runtime_context().gcs_address])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tune_spaces/default.yaml (the generic one: no space ships for 'mine'" in done.stdout
    # its fixed settings printed once, as resolved by the size rule
    assert done.stdout.count("fixed settings (") == 1 and "fixed settings (the size rule < " in done.stdout
    runs = _trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "mine")
    assert len(runs) == 1 and "valid/auc" in runs[0].data.metrics


def test_a_baseline_is_searched_in_its_own_space(ray_local, tmp_path):
    """tune.py --model NAME: every trial trains that model, from its own space and defaults."""
    from conftest import write_custom

    folder = write_custom(tmp_path / "mine")
    done = _tune(["--dataset", str(folder), "--model", "cke", "--num-samples", "2", "--epochs", "1",
                  "--processed", str(tmp_path / "processed"), "--storage-path", str(tmp_path / "ray_results"),
                  "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--set", "protocol=full",
                  "--address", ray_local.get_runtime_context().gcs_address])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "search space: " in done.stdout and "tune_spaces/model-cke.yaml" in done.stdout
    runs = _trial_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "mine")
    assert len(runs) == 2
    for run in runs:
        assert run.data.params["model"] == "cke" and run.data.params["loss"] == "bpr"
        assert "valid/auc" in run.data.metrics and set(run.data.params) >= {"lr", "lambda"}


def _descendants(root: int) -> dict[int, str]:
    """pid -> name of ``root`` and every process below it, from /proc."""
    parents: dict[int, tuple[int, str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
            parents[int(stat.parent.name)] = (int(rest[1]), name)
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, (ppid, _) in parents.items() if ppid in tree} - tree
        tree |= below
        grew = bool(below)
    return {pid: parents[pid][1] for pid in tree if pid in parents}


def _listening(pids: dict[int, str]) -> set[tuple[str, str]]:
    """(process name, address) of every TCP socket in LISTEN state that one of ``pids`` holds."""
    import ipaddress

    owner: dict[str, str] = {}
    for pid, name in pids.items():
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        owner[link[8:-1]] = name
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] != "0A" or cols[9] not in owner:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(cols[1].split(":")[0])
            words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # kernel order per word
            found.add((owner[cols[9]], str(ipaddress.ip_address(words))))
    return found


def _is_loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def test_a_local_run_listens_on_the_loopback_only(shared_data, tmp_path):
    """Every server of a run on a local Ray (GCS, raylet, workers, agents, Prometheus metrics,
    the dashboard) listens on the loopback, never on an address another machine can reach."""
    args = _args(tmp_path, shared_data, "loopback", 1, "--workers", "2")
    args[args.index("--epochs") + 1] = "2"
    with open(tmp_path / "output.txt", "w") as output:  # a file: a full pipe would stall the run
        run = subprocess.Popen([sys.executable, str(REPO / "pipelines" / "tune.py"), *args],
                               stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        seen: set[tuple[str, str]] = set()
        deadline = time.time() + 300
        while run.poll() is None and time.time() < deadline:
            seen |= _listening(_descendants(run.pid))
            time.sleep(0.5)
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert run.returncode == 0, (tmp_path / "output.txt").read_text()[-3000:]
    names = {name for name, _ in seen}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), sorted(seen)
    assert [s for s in seen if not _is_loopback(s[1])] == [], sorted(seen)


def test_tunes_own_loop_raising_ends_the_search_failed_and_its_trials_killed(shared_data, tmp_path):
    """When Tune's own loop raises (ray 2.60 does when Ray's memory monitor kills a trial's
    process at some moments: "Caught unexpected exception"; injected here from a callback of
    Tune's loop), tune.py exits 1 with one line and no traceback, the search run is FAILED and
    its running trial KILLED, both with the reason, and the reason names --resume."""
    args = _args(tmp_path, shared_data, "raising", 1)
    script = ("import runpy, sys\n"
              "from mikgnn.distributed import run_owner\n"
              "def boom(self, iteration, trials, trial, result, **info):\n"
              "    raise RuntimeError('Caught unexpected exception: injected after the first result')\n"
              "run_owner.RunOwner.on_trial_result = boom\n"
              f"sys.argv = ['tune.py', *{args!r}]\n"
              f"runpy.run_path({str(REPO / 'pipelines' / 'tune.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "error: the search stopped on an error in Ray Tune: RuntimeError: Caught unexpected exception: injected" \
        in done.stderr, done.stderr[-3000:]
    assert "--resume raising continues it" in done.stderr and "in <module>" not in done.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (trial,) = _trial_runs(uri)
    assert trial.info.status == "KILLED" and "injected" in trial.data.tags["failure_reason"]
    (search,) = MlflowClient(uri).search_runs([trial.info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert search.info.status == "FAILED" and "injected" in search.data.tags["failure_reason"]


def test_a_resume_of_damaged_tune_state_is_refused_and_changes_nothing(shared_data, ray_local, tmp_path):
    """Junk in tuner.pkl: --resume says which folder cannot be read, exits 2 with no traceback,
    and the search's run keeps the status it had (it flipped back to RUNNING)."""
    address = ray_local.get_runtime_context().gcs_address
    done = _tune(_args(tmp_path, shared_data, "junk", 1, "--epochs", "1", "--address", address))
    assert done.returncode == 0, done.stderr[-3000:]
    (tmp_path / "ray_results" / "junk" / "tuner.pkl").write_bytes(b"not a pickle")
    again = _tune([*_args(tmp_path, shared_data, "junk", 1, "--epochs", "1", "--address", address), "--resume"])
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr[-3000:]
    assert f"--resume junk: Tune's state in {tmp_path / 'ray_results' / 'junk'} cannot be read" in again.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (search,) = client.search_runs([client.get_experiment_by_name("music").experiment_id],
                                   "tags.`mikgnn.kind` = 'search'")
    assert search.info.status == "FINISHED"


def test_the_best_trial_is_one_that_trained_to_its_end():
    """make run of 2026-12-07: ASHA stopped a trial at epoch 24 with valid Recall@20 0.2280;
    the trial that went on to converge reported its best epoch's 0.2217. The first left no
    model, and the search logged none; the best is now the best finished trial."""
    from types import SimpleNamespace

    from mikgnn.distributed.train_loop import FINAL
    from mikgnn.distributed.tuner import METRIC, best_result

    stopped = SimpleNamespace(metrics={METRIC: 0.2280, "trial_id": "15ca49fb"})
    finished = SimpleNamespace(metrics={METRIC: 0.2217, "trial_id": "d9fb32e0", FINAL: True})
    weaker = SimpleNamespace(metrics={METRIC: 0.1, "trial_id": "320b312f", FINAL: True})
    assert best_result([stopped, finished, weaker]) is finished
    assert best_result([stopped]) is stopped  # none finished: the best there is
