"""Peak memory of each Ray Train worker training on the synthetic movie-scale data (issue 5).

    python benchmarks/prepare_scale.py          # once: writes and prepares the synthetic data
    python benchmarks/worker_memory.py          # 2 workers, 1 epoch, Table 1 movie settings

Each worker reports its own peak resident set size (getrusage ru_maxrss) at the end of the
run; pipelines/train.py writes them to metrics.json as worker<r>/peak_rss_mib. Validation and
test use the sampled top-K protocol (100 users): full ranking of 138k users is not what is
measured here. Target: <= 4 GiB per worker.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processed", type=Path, default=Path("/tmp/mikgnn-synthetic/processed-movie"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("extra", nargs="*", help="more pipelines/train.py options, after --")
    args = p.parse_args()
    if not (args.processed / "manifest.json").is_file():
        raise SystemExit(f"{args.processed} is not prepared: run pipelines/prepare.py --dataset movie "
                         "--data-root /tmp/mikgnn-synthetic --output " + str(args.processed))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", "movie",
               "--processed", str(args.processed), "--workers", str(args.workers), "--epochs", str(args.epochs),
               "--set", "protocol=sampled", "--set", "eval_users=100", "--output", tmp, "--storage-path",
               str(Path(tmp) / "ray"), *args.extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        metrics = json.loads((Path(tmp) / "metrics.json").read_text())
    print(json.dumps({
        "command": " ".join(cmd[1:]), "wall_s": round(wall, 1), "workers": args.workers,
        "train_rows": metrics["manifest"]["rows"]["train"], "epoch_seconds": metrics["epoch_seconds"],
        "peak_rss_mib": {k: round(v) for k, v in metrics.items() if k.endswith("/peak_rss_mib")},
        "test_auc": round(metrics["test/auc"], 4),
    }, indent=1))


if __name__ == "__main__":
    main()
