"""Resident memory through one validation of MI-KGNN (Table 1's movie settings) on a processed
dataset: after building the model, after ``predict`` over the valid rows, after the CTR metrics
and after the sampled top-K (500 users), each with the peak so far.

    python benchmarks/eval_memory.py --processed /tmp/mikgnn-movie-search-XXXX/processed
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from mikgnn import metrics, training
from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.experiment import build
from mikgnn.processed import load_processed


def _mib() -> dict:
    rss = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024
    return {"rss_mib": rss, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processed", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_processed(args.processed)
    exp = build(data, ModelConfig(dim=32, n_neighbours=16, hops=1), TrainConfig(batch_size=1024), device="cpu")
    rows, train = exp.splits["valid"], exp.splits["train"]
    steps = {"built": _mib() | {"valid_rows": len(rows)}}
    start = time.perf_counter()
    with torch.no_grad():
        logits = training.predict(exp.model, rows)
    steps["predict"] = _mib() | {"seconds": round(time.perf_counter() - start, 1)}
    labels = rows.label.numpy()
    metrics.auc(labels, logits), metrics.f1_at_half(labels, 1 / (1 + np.exp(-logits)))
    metrics.batch_mean_auc(labels, logits, 1024)
    steps["ctr metrics"] = _mib()
    users = metrics.ranking_users(rows.user.numpy(), labels, "sampled", 500, 0)
    positive, items = labels == 1, torch.arange(exp.n_items)
    with torch.no_grad():
        metrics.topk_metrics(lambda u: exp.model.score_all(u, items), users, train.user.numpy(), train.item.numpy(),
                             rows.user.numpy()[positive], rows.item.numpy()[positive], exp.n_items, (20,))
    steps["top-k"] = _mib()
    print(json.dumps(steps, indent=1))


if __name__ == "__main__":
    main()
