"""Wall time of a music search and each trial's overhead (run wall time minus its own training
and validation time), read back from the search's MLflow runs.

    python benchmarks/tune_search.py                    # 8 trials, the defaults of pipelines/tune.py
    python benchmarks/tune_search.py --num-samples 4 -- --epochs 5
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
    cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", args.dataset,
           "--num-samples", str(args.num_samples), "--tracking-uri", uri, "--storage-path", str(work / "ray"),
           "--set", "name=bench", *args.extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=this_code())
    wall = time.perf_counter() - start
    print(json.dumps({"command": " ".join(cmd[1:]), "wall_s": round(wall, 1)} | overheads(uri, args.dataset),
                     indent=1))


def overheads(uri: str, experiment: str) -> dict:
    """Per trial: its MLflow run's wall time minus its own training, validation and test seconds."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    trials = client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial'")
    found, epochs, seconds = [], 0, {"train": 0.0, "valid": 0.0, "test": 0.0}
    for run in trials:
        for split in ("train", "valid"):
            seconds[split] += sum(m.value for m in client.get_metric_history(run.info.run_id, f"{split}/seconds"))
        seconds["test"] += run.data.metrics.get("test/seconds", 0.0)
        own = sum(m.value for key in ("train/seconds", "valid/seconds")
                  for m in client.get_metric_history(run.info.run_id, key))
        own += run.data.metrics.get("test/seconds", 0.0)
        epochs += len(client.get_metric_history(run.info.run_id, "train/seconds"))
        found.append((run.info.end_time - run.info.start_time) / 1000 - own)
    return {"trials": len(trials), "epochs_trained": epochs, "statuses": sorted(r.info.status for r in trials),
            "overhead_s_median": round(statistics.median(found), 1), "overhead_s_min": round(min(found), 1),
            "overhead_s_max": round(max(found), 1)} | {f"{k}_s_total": round(v, 1) for k, v in seconds.items()}


if __name__ == "__main__":
    main()
