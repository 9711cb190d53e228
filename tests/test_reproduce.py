"""pipelines/reproduce.py and pipelines/report.py end to end on tiny ML-20M-format data: a real
local Ray runs the cells as Tune trials, MLflow (sqlite) holds them, the report is read back
from MLflow alone, and its HTML is rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_movie
from mlflow.tracking import MlflowClient

from mikgnn.distributed.driver import driver_identity
from mikgnn.distributed.tracking import DRIVER_TAG

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "pipelines" / script), *args], capture_output=True, text=True,
                          timeout=timeout)


def _cells(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("reproduce-movie")
    return client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'cell'")


@pytest.fixture(scope="module")
def reproduction(ray_local, tmp_path_factory):
    work = tmp_path_factory.mktemp("reproduce")
    write_movie(work / "raw", n_users=40, n_items=40)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    args = ["--dataset", "movie", "--data-root", str(work / "raw"), "--tables", "4,8", "--models", "mf,mikgnn",
            "--seeds", "0", "--epochs", "1", "--tracking-uri", uri, "--storage-path", str(work / "ray"),
            "--processed-root", str(work / "processed"), "--address", ray_local.get_runtime_context().gcs_address,
            "--set", "max_field=64", "--set", "experiment=reproduce-movie"]
    done = _run("reproduce.py", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, uri, args, done


def test_every_cell_is_one_finished_run_tagged_with_its_tables(reproduction):
    _, uri, _, done = reproduction
    runs = _cells(uri)
    # Table 4: mf, mikgnn; Table 8: n in 2..32, n = 16 (movie's Table 1) being Table 4's mikgnn run
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    assert "6 cells: 0 reused, 6 trained, 0 missing" in done.stdout
    shared = [r for r in runs if r.data.tags.get("mikgnn.table.8") == "MI-KGNN|n16"]
    assert len(shared) == 1 and shared[0].data.tags["mikgnn.table.4"] == "MI-KGNN"
    assert all("test/auc" in r.data.metrics for r in runs)
    client = MlflowClient(uri)
    (search,) = client.search_runs([runs[0].info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {search.info.run_id}  # nested under it


def test_the_report_puts_every_mlflow_figure_beside_the_papers(reproduction):
    work, uri, _, _ = reproduction
    out = work / "report"
    done = _run("report.py", "--experiment", "reproduce-movie", "--tracking-uri", uri, "--output", str(out),
                "--data-root", str(work / "raw"))
    assert done.returncode == 0, done.stderr[-3000:]
    md = (out / "report.md").read_text()
    runs = {r.data.tags.get("mikgnn.table.8"): r for r in _cells(uri)}
    mf = next(r for r in _cells(uri) if r.data.tags.get("mikgnn.table.4") == "MF")
    table4 = md.split("## Table 4")[1].split("## Table 5")[0]
    mikgnn_auc = runs["MI-KGNN|n16"].data.metrics["test/auc"]
    assert f"| MI-KGNN | {mikgnn_auc:.4f} (0.98; " in table4  # the paper's movie AUC beside ours
    assert f"| MF (not in the paper) | {mf.data.metrics['test/auc']:.4f} |" in table4
    table8 = md.split("## Table 8")[1].split("## Table 9")[0]
    row = next(line for line in table8.splitlines() if line.startswith("| MI-KGNN"))
    for n, paper in zip((2, 4, 8, 16, 32), ("0.14", "0.167", "0.184", "0.205", "0.176")):
        ours = runs[f"MI-KGNN|n{n}"].data.metrics["test/recall_at_10"]
        assert f"{ours:.4f} ({paper}; " in row, (n, row)
    assert "no finished run" not in row and "no finished run" not in table4.split("| KGIN")[0]
    assert "not run: data absent" in md  # music and restaurant are not in this data root
    assert {p.name for p in out.glob("*.png")} == {"recall10_vs_n.png"}
    assert not list(work.glob(".report.*"))  # the staging folder is gone


def test_the_html_report_renders_in_headless_chromium(reproduction, tmp_path):
    work, uri, _, _ = reproduction
    out = work / "report-html"
    assert _run("report.py", "--experiment", "reproduce-movie", "--tracking-uri", uri, "--output",
                str(out)).returncode == 0
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/install_test_deps.sh installs it)")
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    assert "<h2>Table 8: Recall@10 of MI-KGNN against n</h2>" in dom
    assert len(re.findall(r'<img alt="recall10_vs_n.png" src="data:image/png;base64,', dom)) == 1
    assert dom.count("<table>") == 10  # the datasets, the claims and Tables 2-9


def test_a_rerun_trains_only_the_missing_cells(reproduction):
    work, uri, args, _ = reproduction
    again = _run("reproduce.py", *args)
    assert again.returncode == 0 and "6 cells: 6 reused, 0 trained, 0 missing" in again.stdout, again.stdout[-2000:]
    assert len(_cells(uri)) == 6
    # a cell whose run did not finish (an interrupted or failed one) is trained again, alone
    victim = next(r for r in _cells(uri) if r.data.tags.get("mikgnn.table.8") == "MI-KGNN|n4")
    MlflowClient(uri).update_run(victim.info.run_id, status="FAILED")
    MlflowClient(uri).set_tag(victim.info.run_id, "failure_reason", "the trial raised an error: out of memory")
    report = _run("report.py", "--experiment", "reproduce-movie", "--tracking-uri", uri, "--output",
                  str(work / "report-failed"))
    assert report.returncode == 0, report.stderr[-2000:]
    md = (work / "report-failed" / "report.md").read_text()
    assert md.count("reproduce.py --dataset movie --data-root") == 1  # the rerun's command is the same one
    assert "python pipelines/reproduce.py --dataset movie" in md and sys.executable not in md  # as a user types it
    table8 = md.split("## Table 8")[1].split("## Table 9")[0]
    assert "| not finished (failed) |" in table8
    assert "- MI-KGNN n4: not finished, failed: the trial raised an error: out of memory" in table8
    third = _run("reproduce.py", *args)
    assert third.returncode == 0 and "6 cells: 5 reused, 1 trained, 0 missing" in third.stdout, third.stdout[-2000:]
    runs = _cells(uri)
    assert len(runs) == 7 and sum(r.info.status == "FINISHED" for r in runs) == 6


def _epochs(uri: str, run_id: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, "valid/auc"))


def test_a_terminated_reproduction_continues_its_cell_from_the_checkpoint(ray_local, tmp_path):
    """SIGTERM (``timeout``, a scheduler's kill) takes Ctrl-C's path: the cell's run and the
    reproduction's run end KILLED, not RUNNING forever; the rerun of the same command restores
    Tune's grid (``Tuner.restore``), which continues the cell in the same trial and run from its
    last checkpoint, and logs no epoch twice. The same command again while one runs is refused."""
    write_movie(tmp_path / "raw", n_users=200, n_items=150)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--dataset", "movie", "--data-root", str(tmp_path / "raw"), "--tables", "4", "--models", "mf",
            "--seeds", "0", "--epochs", "300", "--set", "patience=300", "--tracking-uri", uri,
            "--storage-path", str(tmp_path / "ray"), "--processed-root", str(tmp_path / "processed"),
            "--address", ray_local.get_runtime_context().gcs_address]
    first = subprocess.Popen([sys.executable, str(REPO / "pipelines" / "reproduce.py"), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:  # until 3 epochs are checkpointed
        # (the folders, not MLflow: a second client could race the driver creating the store)
        if any(int(c.name.split("_")[1]) >= 2 for c in (tmp_path / "ray").glob("*-accuracy/*/checkpoint_*")):
            break
        time.sleep(0.5)
    assert first.poll() is None, "the reproduction ended before it could be terminated:\n" + first.stdout.read()
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 130, out[-3000:]
    (run,) = _cells(uri)
    assert run.info.status == "KILLED", out[-3000:]
    assert "interrupted" in run.data.tags["failure_reason"]
    client = MlflowClient(uri)
    (search,) = client.search_runs([run.info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert search.info.status == "KILLED"
    logged = _epochs(uri, run.info.run_id)
    assert 3 <= len(logged) < 300

    # the same cells while a live driver (its run says: this test's process) trains them: refused
    client.update_run(search.info.run_id, status="RUNNING")
    client.set_tag(search.info.run_id, DRIVER_TAG, driver_identity())
    twin = _run("reproduce.py", *args)
    assert twin.returncode == 2 and "is running now, driven by process" in twin.stderr, twin.stderr[-2000:]
    client.set_terminated(search.info.run_id, status="KILLED")

    again = _run("reproduce.py", *args)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "1 cells: 0 already in MLflow, 1 to train" in again.stdout
    assert re.search(r"continuing reproduce-movie-\w+-accuracy: Tune restores its unfinished cells", again.stdout)
    (resumed,) = _cells(uri)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags["mikgnn.trial_id"] == run.data.tags["mikgnn.trial_id"]  # Tune's own trial, restored
    assert "failure_reason" not in resumed.data.tags
    epochs = _epochs(uri, run.info.run_id)
    assert epochs == list(range(1, 301))  # each epoch once: the rerun did not start again from 1
    assert "test/auc" in resumed.data.metrics
    (search,) = client.search_runs([run.info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert search.info.status == "FINISHED"  # the same reproduction's run, ended by its rerun


def test_a_cell_killed_for_memory_fails_with_that_reason_and_the_reproduction_says_so(tmp_path):
    """Ray's memory monitor kills a cell's process (here: a threshold of 2 % of the machine, on
    a local Ray of the reproduction's own): the driver neither hangs nor dies with a traceback of
    its own; the cell's run is FAILED with "out of memory", the reproduction's run FAILED, exit 1."""
    import os

    write_movie(tmp_path / "raw", n_users=40, n_items=40)
    processed = tmp_path / "processed"
    done = subprocess.run([sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", "movie", "--data-root",
                           str(tmp_path / "raw"), "--processed", str(processed / "movie-seed0"), "--epochs", "1",
                           "--output", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # prepared in-process: no Ray Data task to kill
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "RAY_memory_usage_threshold": "0.02", "RAY_memory_monitor_refresh_ms": "100"}
    args = ["--dataset", "movie", "--data-root", str(tmp_path / "raw"), "--tables", "4", "--models", "mf",
            "--seeds", "0", "--epochs", "2", "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray"),
            "--processed-root", str(processed)]
    out = subprocess.run([sys.executable, str(REPO / "pipelines" / "reproduce.py"), *args], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-3000:]
    assert "in <module>" not in out.stderr, out.stderr[-3000:]  # no traceback of the driver's own
    assert "rerun the same command to train only the missing cells" in out.stderr
    (cell,) = _cells(uri)
    assert cell.info.status == "FAILED", cell.data.tags
    reason = cell.data.tags["failure_reason"]
    assert "out of memory" in reason and "running low on memory" in reason, reason
    client = MlflowClient(uri)
    (search,) = client.search_runs([cell.info.experiment_id], "tags.`mikgnn.kind` = 'search'")
    assert search.info.status == "FAILED" and search.data.tags["failure_reason"]


@pytest.mark.parametrize("where", ["tune", "around"])
def test_the_error_that_stops_a_reproduction_is_named_where_it_arose(ray_local, tmp_path, monkeypatch, where):
    """Tune's own loop raising is reported as Ray Tune's error (run_grid's SearchStopped); an
    error around the grids (here MLflow's store failing a write) is named as what it is, not
    passed off as Tune's. Either way the cell run left RUNNING ends KILLED with that reason."""
    from mlflow.exceptions import MlflowException

    from mikgnn.distributed import reproduce_job
    from mikgnn.distributed.search_driver import SearchStopped, stopped_reason
    from mikgnn.distributed.tracking import SEARCH_TAG
    from mikgnn.reproduction.cells import plan

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = reproduce_job.ReproductionJob(dataset="movie", processed={0: str(tmp_path / "unused")}, tracking_uri=uri,
                                        experiment="reproduce-movie", storage_path=str(tmp_path / "ray"), name="r1")
    opened = []

    def failing_grid(job, cells, *_):
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(job.experiment).experiment_id
        opened.append(client.create_run(exp, tags={SEARCH_TAG: job.name}).info.run_id)
        if where == "tune":
            raise SearchStopped(stopped_reason(RuntimeError("Traceback\nValueError: trial actor died"), "rerun"))
        raise MlflowException("database is locked\n(details)")

    monkeypatch.setattr(reproduce_job, "run_grid", failing_grid)
    outcome = reproduce_job.reproduce(job, plan("movie", (4,), (0,), models=("mf",)).cells)
    expected = ("the search stopped on an error in Ray Tune: ValueError: trial actor died; rerun" if where == "tune"
                else "the reproduction stopped on MlflowException: database is locked; "
                     "rerun its command to continue the missing cells")
    assert outcome["error"] == expected
    assert outcome["missing"] and not outcome["interrupted"]
    run = MlflowClient(uri).get_run(opened[0])
    assert run.info.status == "KILLED" and run.data.tags["failure_reason"] == expected
