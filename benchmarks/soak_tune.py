"""Soak: the default music search, back to back, with the 2 cores also loaded by a CPU hog.

    python benchmarks/soak_tune.py                       # 10 searches, 2 hog processes
    python benchmarks/soak_tune.py --searches 3 --hogs 1 -- --num-samples 4 --epochs 3

Each search is ``pipelines/tune.py --dataset music`` (plus the options after ``--``) in a fresh
working folder, with its own MLflow store and Ray results; the processed dataset is built by the
first search and reused by the others, as ``make run`` reuses it. The hog is busy
loops, one process each, for the whole soak. A search that has not ended after ``--limit``
seconds is killed and counted as hung. Prints one JSON line per search and a summary: how many
completed (exit 0, one MLflow run for each of the --num-samples trials, every one FINISHED or
KILLED with real validation metrics), their wall
times, and the placement groups the search's guard removed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]


def this_code() -> dict:
    """The environment of a search of this checkout: its Ray workers import this ``mikgnn``,
    not the one an editable install points at (a soak of 2026-12-07 ran another checkout's
    code, edited while it ran, because its searches' working folders are elsewhere)."""
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _hog() -> None:
    while True:
        pass


def _check(uri: str) -> dict:
    """Trial runs and whether each carries real validation metrics."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("music")
    if exp is None:
        return {"trials": 0, "real": 0, "statuses": []}
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial'")
    real = [r for r in runs if r.info.status in ("FINISHED", "KILLED") and "valid/recall_at_20" in r.data.metrics]
    return {"trials": len(runs), "real": len(real), "statuses": sorted(r.info.status for r in runs)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--searches", type=int, default=10)
    p.add_argument("--hogs", type=int, default=2, help="busy-loop processes loading the CPUs")
    p.add_argument("--limit", type=float, default=1800, help="seconds after which a search counts as hung")
    p.add_argument("extra", nargs="*", help="more pipelines/tune.py options, after --")
    args = p.parse_args()
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    extra = args.extra
    expected = int(extra[extra.index("--num-samples") + 1]) if "--num-samples" in extra else 8  # tune.py's default
    results, root = [], Path(tempfile.mkdtemp(prefix="mikgnn-soak-"))
    try:
        for i in range(args.searches):
            work = root / f"search{i}"
            work.mkdir()
            uri = f"sqlite:///{work / 'mlflow.db'}"
            cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", "music", "--tracking-uri", uri,
                   "--storage-path", str(work / "ray_results"), "--processed", str(root / "processed"), *args.extra]
            start = time.perf_counter()
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.limit, cwd=work,
                                      env=this_code())
                rc, stderr = done.returncode, done.stderr
            except subprocess.TimeoutExpired as exc:
                rc, stderr = "hung", (exc.stderr or b"").decode(errors="replace")
            wall = time.perf_counter() - start
            found = _check(uri)
            row = {"search": i, "rc": rc, "wall_s": round(wall, 1), **found,
                   "orphans_removed": stderr.count("removed placement group"),
                   "complete": rc == 0 and found["trials"] == expected and found["real"] == expected}
            errors = [line for line in stderr.splitlines() if line.startswith("error:")]
            if errors:
                row["error"] = errors[-1][:300]  # why a search failed, as tune.py said it
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
    walls = [r["wall_s"] for r in results if r["complete"]]
    print(json.dumps({"command": " ".join(sys.argv), "searches": len(results),
                      "completed": sum(r["complete"] for r in results),
                      "hung": sum(r["rc"] == "hung" for r in results),
                      "wall_s_median": statistics.median(walls) if walls else None,
                      "wall_s_min": min(walls, default=None), "wall_s_max": max(walls, default=None),
                      "orphans_removed": sum(r["orphans_removed"] for r in results)}))


if __name__ == "__main__":
    main()
