"""The device check of issue 34 (benchmarks/gpu_check.sh), dry-run on the CPU at tiny sizes: every
stage runs its real commands (Ray Train, a Tune search, several workers, a movie-format dataset
prepared and trained, recommend.py) and writes its figures, so that the one GPU run cannot fail
for a reason this machine could have shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_the_device_check_runs_every_stage_on_the_cpu(tmp_path):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out"), "--cpu"],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    figures = [json.loads(line) for line in (tmp_path / "out" / "figures.jsonl").read_text().splitlines()]
    assert done.returncode == 0, (done.stderr[-3000:], figures)
    assert not [f for f in figures if "error" in f]
    by_stage = {}
    for f in figures:
        by_stage.setdefault(f["stage"], []).append(f)
    assert sorted(by_stage) == ["a", "b", "c", "d", "e"]
    assert [f["run"] for f in by_stage["a"]] == ["one_process_cpu"]  # on the GPU also Ray Train and torch on it
    assert all(f["steady_epoch_s"] > 0 and 0.5 < f["test_auc"] <= 1 for f in by_stage["a"])
    assert by_stage["b"][0]["trials"] == 2 and by_stage["b"][0]["trials_with_test"] == 2
    assert [f["workers"] for f in by_stage["c"]] == [1, 2] and by_stage["c"][0]["speedup"] == 1.0
    movie = by_stage["d"][0]
    assert movie["users"] > 100 and len(movie["epoch_s"]) == 2 and movie["full_ranking_test_s"] > 0
    recs = by_stage["e"][0]
    assert recs["rows"] == recs["k"] * recs["users"] and recs["users"] > 1000
    assert (tmp_path / "out" / "machine.txt").is_file() and list((tmp_path / "out" / "logs").glob("*.log"))
