"""Top-K for every user: recommend.py's Ray Data job against scoring in one process, and the
memory a block of users costs.

    MIKGNN_DATA_ROOT=../shared/data python benchmarks/recommend_speed.py --dataset music --k 100
    MIKGNN_DATA_ROOT=../shared/data python benchmarks/recommend_speed.py --dataset movie1m --k 100

1. A checkpoint: runs/recommend-bench-<dataset>/checkpoint (train.py, MI-KGNN, 1 epoch; reused).
2. Direct: one process loads the model and calls ``score_all`` + top-K (``Recommendations.block``)
   over every user in blocks of --batch-users; users per second, and the process's peak RSS
   for two block sizes (each in its own process, so each peak is its own).
3. recommend.py: the same users, K and block, as the Ray Data job writing Parquet (wall time of
   the whole command, Ray's start included, and of the job alone as it reports); then again
   with every user listed --repeat times, so that the job's fixed start (actors importing torch
   and loading the model, the executor's start) and its steady throughput can be told apart:
   marginal users/s = (repeat - 1) x users / (t_repeat - t_once).
The ratio job / direct is what the issue bounds (<= 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

DIRECT = """
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from mikgnn.model_store import load_trained
from mikgnn.recommend import Recommendations
trained = load_trained(sys.argv[1])
rec = Recommendations(trained, int(sys.argv[2]))
users = np.arange(trained.data.n_users)
block = int(sys.argv[3])
start = time.perf_counter()
rows = 0
for s in range(0, users.size, block):
    rows += rec.block(users[s : s + block])["user"].size
seconds = time.perf_counter() - start
print(json.dumps({"users": int(users.size), "rows": rows, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def direct(checkpoint: Path, k: int, block: int, threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", DIRECT, str(checkpoint), str(k), str(block), str(threads)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def job(checkpoint: Path, args: argparse.Namespace, out: Path, users: Path | None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "pipelines/recommend.py", "--checkpoint", str(checkpoint), "--k",
                           str(args.k), "--output", str(out), "--batch-users", str(args.batch_users),
                           "--concurrency", str(args.concurrency), *(["--users", str(users)] if users else [])],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    summary = json.loads((out / "_SUCCESS").read_text())
    return {"wall_seconds": time.perf_counter() - start, "job_seconds": summary["seconds"], "rows": summary["rows"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--batch-users", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the direct run (an actor uses 1)")
    p.add_argument("--repeat", type=int, default=4, help="the second job lists every user this many times")
    args = p.parse_args()
    work = ROOT / "runs" / f"recommend-bench-{args.dataset}"
    checkpoint = work / "checkpoint"
    if not (checkpoint / "state.pt").is_file():
        subprocess.run([sys.executable, "pipelines/train.py", "--dataset", args.dataset, "--epochs", "1",
                        "--output", str(work), "--set", "protocol=sampled"], cwd=ROOT, check=True)
    result = {"dataset": args.dataset, "k": args.k, "batch_users": args.batch_users, "cpus": os.cpu_count()}
    result["direct"] = direct(checkpoint, args.k, args.batch_users, args.threads)
    result["direct_small_block"] = direct(checkpoint, args.k, max(1, args.batch_users // 8), args.threads)
    result["direct_large_block"] = direct(checkpoint, args.k, args.batch_users * 8, args.threads)
    result["job"] = job(checkpoint, args, work / "recs", None)
    ids = pd.read_parquet(work / "recs", columns=["user"])["user"].unique()
    users = work / "users.txt"
    users.write_text("\n".join(list(ids) * args.repeat) + "\n")
    result["job_repeated"] = job(checkpoint, args, work / "recs-repeated", users)
    once, again = result["job"]["job_seconds"], result["job_repeated"]["job_seconds"]
    result["direct_users_per_s"] = result["direct"]["users"] / result["direct"]["seconds"]
    result["job_users_per_s"] = result["direct"]["users"] / once
    result["job_marginal_users_per_s"] = (args.repeat - 1) * len(ids) / max(again - once, 1e-9)
    result["job_over_direct"] = once / result["direct"]["seconds"]
    result["marginal_job_over_direct"] = result["direct_users_per_s"] / result["job_marginal_users_per_s"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
