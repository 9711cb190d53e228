"""The paper's sweeps through the main job: Table 8 (n at h = 1) and Table 9 (h at Table 1's n).

    python benchmarks/paper_sweeps.py --dataset music
    python benchmarks/paper_sweeps.py --dataset movie1m -- --epochs 10

Each sweep is one ``pipelines/tune.py`` run over a ``grid`` space of (n, h) points, every other
hyperparameter at Table 1, random search (a sweep) and the fifo scheduler, so every point is
trained to its end and evaluated; points whose n^h exceeds max_field (64 by default) train with
the receptive-field adjustment (FMK r), as a search does. Prints one JSON line per sweep: its wall
time, and each point's epochs, validation and test AUC and Recall@20, and whether FMK r trained it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mikgnn.config import table1  # noqa: E402


def sweeps(dataset: str) -> dict[str, list[list[int]]]:
    n = table1(dataset).model.n_neighbours
    return {"table8": [[k, 1] for k in (2, 4, 8, 16, 32)], "table9": [[n, h] for h in (1, 2, 3, 4)]}


def points(uri: str, experiment: str) -> list[dict]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial'")
    out = []
    for run in sorted(runs, key=lambda r: (int(r.data.params["n"]), int(r.data.params["h"]))):
        m = run.data.metrics
        out.append({"n": int(run.data.params["n"]), "h": int(run.data.params["h"]), "status": run.info.status,
                    "fmk_r": "field_adjusted" in run.data.tags, "best_epoch": m.get("best_epoch"),
                    **{k: round(m[k], 4) for k in ("valid/auc", "valid/recall_at_20", "test/auc",
                                                    "test/recall_at_20") if k in m}})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--only", choices=("table8", "table9"), help="one sweep (default: both)")
    p.add_argument("extra", nargs="*", help="more pipelines/tune.py options, after --")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"mikgnn-sweeps-{args.dataset}-"))
    for name, grid in sweeps(args.dataset).items():
        if args.only and name != args.only:
            continue
        space = work / f"{name}.yaml"
        space.write_text(f"field: {{type: grid, values: {json.dumps(grid)}}}\n")
        uri = f"sqlite:///{work / name}.db"
        cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", args.dataset, "--space", str(space),
               "--num-samples", "1", "--set", "search=random", "--set", "scheduler=fifo", "--tracking-uri", uri,
               "--storage-path", str(work / "ray"), "--set", f"name={name}", *args.extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        print(json.dumps({"sweep": name, "dataset": args.dataset, "wall_s": round(wall, 1),
                          "command": " ".join(cmd[1:]), "points": points(uri, args.dataset)}), flush=True)


if __name__ == "__main__":
    main()
