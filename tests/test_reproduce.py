"""pipelines/reproduce.py and pipelines/report.py end to end on tiny ML-20M-format data: a real
local Ray runs the cells as Tune trials, MLflow (sqlite) holds them, the report is read back
from MLflow alone, and its HTML is rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_movie
from mlflow.tracking import MlflowClient

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
            "--processed-root", str(work / "processed"), "--address", ray_local.get_runtime_context().gcs_address]
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
    table8 = (work / "report-failed" / "report.md").read_text().split("## Table 8")[1].split("## Table 9")[0]
    assert "| not finished (failed) |" in table8
    assert "- MI-KGNN n4: not finished, failed: the trial raised an error: out of memory" in table8
    third = _run("reproduce.py", *args)
    assert third.returncode == 0 and "6 cells: 5 reused, 1 trained, 0 missing" in third.stdout, third.stdout[-2000:]
    runs = _cells(uri)
    assert len(runs) == 7 and sum(r.info.status == "FINISHED" for r in runs) == 6
