"""Seconds of one training epoch, of the all-users x all-items score grid, and of a test evaluation.

    python benchmarks/eval_speed.py --dataset music       (needs processed/music-seed0)
    python benchmarks/eval_speed.py --dataset music --hops 2 --neighbours 8
    python benchmarks/eval_speed.py --dataset music --transform learned
    python benchmarks/eval_speed.py --dataset music --hops 4 --adjusted-field --users 500 --threads 1
                                                        # a search trial's validation grid (8x4, FMK r)
    python benchmarks/eval_speed.py --dataset music --hops 3 --users 200 --grid-only --scorer grid
    python benchmarks/eval_speed.py --dataset music --hops 3 --users 200 --grid-only --scorer graph
                                                        # the two score grids of MI-KGNN (score_all picks)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mikgnn.config import table1  # noqa: E402
from mikgnn.experiment import build  # noqa: E402
from mikgnn.models.score_graph import graph_cost, score_graph  # noqa: E402
from mikgnn.models.score_grid import score_grid  # noqa: E402
from mikgnn.processed import load_processed  # noqa: E402

SCORERS = {"auto": lambda model, users, items: model.score_all(users, items), "grid": score_grid,
           "graph": score_graph}
from mikgnn.training import evaluate, shuffled_batches, train_epoch  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--processed", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hops", type=int, help="h (default: Table 1)")
    p.add_argument("--neighbours", type=int, help="n (default: Table 1)")
    p.add_argument("--transform", choices=("identity", "learned"), default="identity",
                   help="Eq. 16's W1, W2, b (default: identity, MI-KGNN's default)")
    p.add_argument("--adjusted-field", action="store_true", help="FMK r, as a search trains n^h > max_field")
    p.add_argument("--users", type=int, help="score the first N users (a search validates 500; default: all)")
    p.add_argument("--threads", type=int, help="torch threads (a search's trial: 1; default: torch's choice)")
    p.add_argument("--scorer", choices=tuple(SCORERS), default="auto",
                   help="the score grid: score_all's choice, or score_grid / score_graph (models/)")
    p.add_argument("--grid-only", action="store_true", help="time the score grid alone (no epoch, no test)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_processed(args.processed or Path("processed") / f"{args.dataset}-seed0")
    t = table1(args.dataset)
    model = replace(t.model, hops=args.hops or t.model.hops, n_neighbours=args.neighbours or t.model.n_neighbours,
                    transform=args.transform, adjusted_field=args.adjusted_field)
    exp = build(data, model, t.train)
    g = torch.Generator().manual_seed(0)
    train = exp.splits["train"]
    users, items = torch.arange(min(args.users or data.n_users, data.n_users)), torch.arange(data.n_items)
    timings = {"epoch_s": [], "grid_s": [], "test_eval_s": []}
    for _ in range(args.repeats):
        if not args.grid_only:
            timings["epoch_s"].append(train_epoch(exp.model, exp.optimizer, shuffled_batches(
                train, t.train.batch_size, g), t.train)["seconds"])
        start = time.perf_counter()
        with torch.no_grad():
            SCORERS[args.scorer](exp.model, users, items)
        timings["grid_s"].append(time.perf_counter() - start)
        if not args.grid_only:
            start = time.perf_counter()
            evaluate(exp.model, "test", exp.splits["test"], train, data.n_items, t.train)
            timings["test_eval_s"].append(time.perf_counter() - start)
    graph, grid = graph_cost(exp.model, items) if model.model != "mf" else (0, 0)
    print(json.dumps({k: round(min(v), 3) for k, v in timings.items() if v}
                     | {"threads": torch.get_num_threads(), "hops": model.hops, "neighbours": model.n_neighbours,
                        "adjusted_field": model.adjusted_field, "users": len(users), "scorer": args.scorer,
                        "node_updates_per_user": {"graph": graph, "grid": grid}}))


if __name__ == "__main__":
    main()
