"""The full-ranking grid (every user x every item) as the catalogue grows: seconds and peak memory.

    python benchmarks/grid_scale.py --users 18000 --items 15000          # issue 16's size, h = 1
    python benchmarks/grid_scale.py --users 18000 --items 50000 --threads 2

A synthetic dataset in memory (a random KG of 10 triples per item over items + 20 % more
entities, 8 labelled rows per user) and MI-KGNN at Table 1's music settings (d 16, n 8, h 1),
untrained: the grid's cost does not depend on the weights. It scores users in the chunks that
evaluation uses (``metrics.topk_metrics``: 512 users x all items at a time) and keeps the top
100 of each, as a full-ranking evaluation does; each chunk's scores are freed before the next,
so memory is chunk x items floats, not users x items. Prints seconds, users per second and the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mikgnn.config import table1  # noqa: E402
from mikgnn.models import build_model  # noqa: E402
from mikgnn.processed import ProcessedDataset  # noqa: E402

CHUNK = 512


def synthetic(users: int, items: int, seed: int = 0) -> ProcessedDataset:
    rng = np.random.default_rng(seed)
    entities = int(items * 1.2)
    head = np.repeat(np.arange(items), 10)
    tail = rng.integers(items, entities, head.size)
    relation = rng.integers(0, 20, head.size)
    rows = {"user": np.repeat(np.arange(users), 8), "item": rng.integers(0, items, users * 8),
            "label": np.tile([1, 0], users * 4)}
    manifest = dict(n_users=users, n_items=items, n_entities=entities, n_relations=20)
    return ProcessedDataset(splits={"train": rows}, kg={"head": head, "relation": relation, "tail": tail},
                            manifest=manifest)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=18_000)
    p.add_argument("--items", type=int, default=15_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--k", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(synthetic(args.users, args.items), table1("music").model, seed=0).eval()
    items = torch.arange(args.items)
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, args.users, CHUNK):
            users = torch.arange(first, min(first + CHUNK, args.users))
            torch.topk(model.score_all(users, items), args.k, dim=1)
    seconds = time.perf_counter() - start
    print(json.dumps({"users": args.users, "items": args.items, "threads": args.threads, "seconds": round(seconds, 2),
                      "users_per_s": round(args.users / seconds, 1), "chunk": CHUNK,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
