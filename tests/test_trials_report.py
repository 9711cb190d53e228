"""The search run's view of its trials (``trials_report``), read from real runs in a sqlite
MLflow store: the CSV best first, the parallel-coordinates plot with log10 axes where a value
was searched over decades, and an HTML page that needs no script or network."""

from __future__ import annotations

import csv
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from mikgnn.distributed.tracking import EARLY_STOP_TAG, KIND_TAG, SEARCH_TAG, TRIAL_TAG
from mikgnn.distributed.trials_report import log_trials_report

SEARCHED = ["theta", "n", "h", "lambda", "lr"]


def _trial(client: MlflowClient, exp: str, trial: str, params: dict, metrics: dict, status: str = "FINISHED",
           tags: dict | None = None, search: str = "s1") -> str:
    tags = {TRIAL_TAG: trial, KIND_TAG: "trial", SEARCH_TAG: search} | (tags or {})
    run_id = client.create_run(exp, run_name=f"run_trial_{trial}", tags=tags).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(k, v, 0, 1) for k, v in metrics.items()], tags=[RunTag("x", "y")])
    client.set_terminated(run_id, status)
    return run_id


def test_the_search_run_holds_its_trials_best_first_and_their_parallel_coordinates(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("music")
    search = client.create_run(exp, tags={KIND_TAG: "search", SEARCH_TAG: "s1"}).info.run_id
    common = {"h": 1, "dataset": "music", "model": "mikgnn", "d": 16}
    # finished: its best epoch's metric (best/) wins over its last epoch's
    _trial(client, exp, "aaa", common | {"theta": 0.9, "n": 8, "lambda": 9.1e-5, "lr": 5e-4},
           {"valid/recall_at_20": 0.15, "best/valid/recall_at_20": 0.21, "best/valid/auc": 0.8, "test/auc": 0.79})
    _trial(client, exp, "bbb", common | {"theta": -0.5, "n": 2, "lambda": 8.3e-7, "lr": 4e-3},
           {"valid/recall_at_20": 0.04, "valid/auc": 0.52}, tags={EARLY_STOP_TAG: "stopped by ASHA after epoch 3"})
    _trial(client, exp, "ccc", common | {"theta": 0.1, "n": 32, "lambda": 1e-8, "lr": 1e-2}, {}, status="FAILED")
    _trial(client, exp, "ddd", common | {"theta": 0.2, "n": 4, "lambda": 1e-4, "lr": 1e-3},
           {"best/valid/recall_at_20": 0.5}, search="another")  # another search's: not in this one's view

    rows = log_trials_report(client, search, exp, "s1", SEARCHED, {"lambda", "lr"}, "valid/recall@20")

    assert [r["trial"] for r in rows] == ["aaa", "bbb", "ccc"]
    assert [r["status"] for r in rows] == ["finished", "stopped early", "failed"]
    assert set(a.path for a in client.list_artifacts(search)) == {"trials.csv", "parallel_coordinates.png",
                                                                  "parallel_coordinates.html"}
    folder = Path(client.download_artifacts(search, "", str(tmp_path / "got")))
    with open(folder / "trials.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["trial", "status", *SEARCHED, "valid/recall@20", "valid/auc", "test/recall@20",
                              "test/ndcg@20", "test/auc", "run_id"]
    assert [(r["trial"], r["valid/recall@20"], r["lambda"]) for r in table] == [
        ("aaa", "0.21", "9.1e-05"), ("bbb", "0.04", "8.3e-07"), ("ccc", "", "1e-08")]
    assert (folder / "parallel_coordinates.png").read_bytes()[:4] == b"\x89PNG"
    page = (folder / "parallel_coordinates.html").read_text()
    assert "<svg" in page and not any(fetch in page for fetch in ("<script", " src=", "<link", "<img"))
    svg, table_html = page.split("<table", 1)
    # log10 axes for the values searched over decades; h, the same in every trial, is no axis
    assert "lambda (log10)" in svg and "lr (log10)" in svg and ">theta<" in svg and ">n<" in svg
    assert ">h<" not in svg and ">h<" in table_html and table_html.count("<tr>") == 4  # header and 3 trials
