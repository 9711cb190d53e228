"""Wall time of a music search, each trial's overhead (run wall time minus its own training
and validation time) and the disk the search leaves (MLflow's store and artifacts, Tune's
results), read back from the search's runs and folder.

    python benchmarks/tune_search.py                    # 8 trials, the defaults of pipelines/tune.py
    python benchmarks/tune_search.py --num-samples 4 -- --epochs 5
    python benchmarks/synthetic_custom.py --output /tmp/custom-18k      # a 140k-row custom folder
    python benchmarks/tune_search.py --dataset /tmp/custom-18k --num-samples 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.soak_tune import this_code  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("extra", nargs="*", help="more pipelines/tune.py options, after --")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mikgnn-tune-bench-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    processed = REPO / "processed" / f"{Path(args.dataset).name}-seed0"  # prepared once, as from the checkout
    cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", args.dataset,
           "--num-samples", str(args.num_samples), "--tracking-uri", uri, "--storage-path", str(work / "ray"),
           "--processed", str(processed), "--set", "name=bench", *args.extra]
    start = time.perf_counter()
    # in the work folder: MLflow's artifacts (./mlruns) land there, as in a user's folder
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=this_code(), cwd=work)
    wall = time.perf_counter() - start
    experiment = Path(args.dataset).name
    print(json.dumps({"command": " ".join(cmd[1:]), "wall_s": round(wall, 1)}
                     | overheads(uri, experiment, work / "ray") | disk_mb(work), indent=1))


def own_seconds(storage: Path) -> dict[str, dict[str, float]]:
    """Per trial id: its training, validation and test seconds, from Tune's result.json lines
    (a trial's MLflow run logs no timings unless --set diagnostics=true)."""
    out: dict[str, dict[str, float]] = {}
    for path in storage.rglob("result.json"):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            own = out.setdefault(result["trial_id"], {"train": 0.0, "valid": 0.0, "test": 0.0, "epochs": 0})
            if result.get("final"):
                own["test"] += result.get("test/seconds", 0.0)
            elif "train/seconds" in result:
                own["train"] += result["train/seconds"]
                own["valid"] += result.get("valid/seconds", 0.0)
                own["epochs"] += 1
    return out


def disk_mb(work: Path) -> dict:
    """What the search left in its folder: MLflow's store and artifacts, Tune's results."""
    def size(path: Path) -> float:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        return round(sum(f.stat().st_size for f in files) / 1e6, 1)

    parts = {name: size(work / name) for name in ("mlflow.db", "mlruns", "ray") if (work / name).exists()}
    return {"disk_mb": round(sum(parts.values()), 1)} | {f"disk_mb_{k}": v for k, v in parts.items()}


def overheads(uri: str, experiment: str, storage: Path) -> dict:
    """Per trial: its MLflow run's wall time minus its own training, validation and test seconds."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    trials = client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial'")
    seconds = own_seconds(storage)
    found, totals = [], {"train": 0.0, "valid": 0.0, "test": 0.0, "epochs": 0}
    for run in trials:
        own = seconds.get(run.data.tags["mikgnn.trial_id"], {})
        totals = {k: v + own.get(k, 0) for k, v in totals.items()}
        found.append((run.info.end_time - run.info.start_time) / 1000 - own.get("train", 0) - own.get("valid", 0)
                     - own.get("test", 0))
    return {"trials": len(trials), "epochs_trained": totals.pop("epochs"),
            "statuses": sorted(r.info.status for r in trials),
            "overhead_s_median": round(statistics.median(found), 1), "overhead_s_min": round(min(found), 1),
            "overhead_s_max": round(max(found), 1)} | {f"{k}_s_total": round(v, 1) for k, v in totals.items()}


if __name__ == "__main__":
    main()
