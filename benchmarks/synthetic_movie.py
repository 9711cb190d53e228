"""Write a synthetic dataset in the official ML-20M + KGCN movie format at the paper's scale.

Default scale (SPEC §2 table, movie): 138,159 users, 16,954 items, 102,569 entities,
32 relations, 499,474 triples, 13.5 M ratings >= 4 plus 6.5 M below (20 M rows, as ML-20M).

    python benchmarks/synthetic_movie.py --root /tmp/mikgnn-synthetic
    python benchmarks/synthetic_movie.py --root /tmp/small --scale 0.01
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

PAPER = dict(n_users=138_159, n_items=16_954, n_entities=102_569, n_relations=32,
             n_triples=499_474, n_positive=13_500_000, n_below=6_500_000)


def write_synthetic_movie(root: Path, scale: float = 1.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    size = {k: max(2, int(v * scale)) for k, v in PAPER.items()}
    n_users, n_items = size["n_users"], min(size["n_items"], PAPER["n_items"])
    n_items = max(n_items, 50)
    folder = root / "movie"
    folder.mkdir(parents=True, exist_ok=True)
    movie_ids = np.arange(n_items) * 7 + 1
    _write_lines(folder / "item_index2entity_id.txt",
                 [f"{m}\t{k}" for k, m in enumerate(movie_ids.tolist())], "\r\n")
    _write_kg(folder / "kg.txt", rng, n_items, max(size["n_entities"], n_items + 10),
              size["n_relations"], size["n_triples"])
    _write_ratings(folder / "ratings.csv", rng, n_users, movie_ids,
                   size["n_positive"] + size["n_below"], size["n_positive"])
    return folder


def _write_lines(path: Path, lines: list[str], newline: str) -> None:
    with open(path, "w", newline="") as f:
        f.write(newline.join(lines) + newline)


def _write_kg(path, rng, n_items, n_entities, n_relations, n_triples) -> None:
    head = np.concatenate([np.arange(n_items), rng.integers(0, n_entities, 2 * n_triples)])
    tail = np.concatenate([rng.integers(n_items, n_entities, n_items),
                           rng.integers(0, n_entities, 2 * n_triples)])
    relation = rng.integers(0, n_relations, head.size)
    keys = (head * n_entities + tail) * n_relations + relation
    _, first = np.unique(keys, return_index=True)
    keep = np.sort(first)[:n_triples]
    names = np.array([f"film.film.rel{r}" for r in range(n_relations)])
    table = pa.table({"h": head[keep], "r": names[relation[keep]], "t": tail[keep]})
    with open(path, "wb") as f:
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, delimiter="\t",
                                                     quoting_style="none"))


def _write_ratings(path, rng, n_users, movie_ids, n_rows, n_positive) -> None:
    n_items = movie_ids.size
    counts = np.clip(rng.lognormal(np.log(n_rows / n_users) - 0.5, 1.0, n_users), 1, n_items // 2)
    # at most every item once: a (user, item) pair rated twice is refused by preparation
    counts = np.clip((counts * n_rows / counts.sum()).astype(np.int64), 1, n_items)
    user = np.repeat(np.arange(1, n_users + 1), counts)
    k = np.arange(user.size) - np.repeat(np.cumsum(counts) - counts, counts)
    start = rng.integers(0, n_items, n_users)
    coprime = np.flatnonzero(np.gcd(np.arange(n_items), n_items) == 1)
    stride = rng.choice(coprime, n_users)  # coprime with n_items: k * stride is distinct mod n_items
    item = (np.repeat(start, counts) + k * np.repeat(stride, counts)) % n_items  # distinct per user
    positive = rng.random(user.size) < n_positive / user.size
    rating = np.where(positive, rng.choice([4.0, 4.5, 5.0], user.size),
                      rng.choice([0.5, 1.0, 2.0, 3.0, 3.5], user.size))
    table = pa.table({"userId": user, "movieId": movie_ids[item], "rating": rating,
                      "timestamp": np.full(user.size, 1_100_000_000)})
    with open(path, "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="data root to write movie/ into")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the paper's sizes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(write_synthetic_movie(args.root, args.scale, args.seed))


if __name__ == "__main__":
    main()
