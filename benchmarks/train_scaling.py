"""Training throughput of W Ray Train workers (gloo, 1 CPU and 1 thread each) against 1.

    python benchmarks/train_scaling.py --dataset music --workers 1 2
    python benchmarks/train_scaling.py --dataset music --batch-per-worker --sync-every 16

Throughput = train rows per epoch / median seconds of an epoch's training steps (rank 0's
clock; every worker steps in lockstep), over every epoch but the first of every repeat.
Evaluation is not included. The worker counts alternate within each repeat, so slow phases
of a noisy machine hit both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mikgnn.config import ParallelConfig, table1  # noqa: E402
from mikgnn.distributed.cluster import connect  # noqa: E402
from mikgnn.distributed.trainer import make_trainer  # noqa: E402
from mikgnn.processed import read_manifest  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--processed", type=Path)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--sync-every", type=int, default=1, help="see pipelines/train.py")
    p.add_argument("--batch-per-worker", action="store_true", help="see pipelines/train.py")
    args = p.parse_args()
    processed = (args.processed or Path("processed") / f"{args.dataset}-seed0").resolve()
    rows = read_manifest(processed)["rows"]["train"]
    t = table1(args.dataset)
    train = replace(t.train, epochs=args.epochs, patience=args.epochs, protocol="sampled", eval_users=100)
    parallel = ParallelConfig(sync_every=args.sync_every, batch_per_worker=args.batch_per_worker)
    connect()
    seconds = {w: [] for w in args.workers}
    for r in range(args.repeats):
        for w in args.workers:
            with tempfile.TemporaryDirectory() as storage:
                result = make_trainer(processed, t.model, train, workers=w, storage_path=Path(storage),
                                      name=f"scaling-{w}-{r}", parallel=parallel).fit()
                seconds[w] += result.metrics["epoch_seconds"][1:]  # the first epoch warms up
    out = {w: {"epoch_train_s": round(statistics.median(s), 3), "range_s": [round(min(s), 3), round(max(s), 3)],
               "rows_per_s": round(rows / statistics.median(s))} for w, s in seconds.items()}
    base = out[args.workers[0]]["rows_per_s"]
    for w in args.workers:
        out[w]["speedup"] = round(out[w]["rows_per_s"] / base, 2)
    print(json.dumps({"dataset": args.dataset, "train_rows": rows, "batch": t.train.batch_size,
                      "epochs": args.epochs, "repeats": args.repeats, "parallel": asdict(parallel), **out}, indent=1))


if __name__ == "__main__":
    main()
