"""Shared fixtures: the real data root, a real local Ray, and tiny datasets in official formats."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from mikgnn.processed import ProcessedDataset

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    """A loopback port nothing listens on at this moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("MIKGNN_DATA_ROOT", SHARED_DATA))
    if not (root / "music" / "user_artists.dat").is_file():
        pytest.skip(f"the real datasets are not under {root}")
    return root


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster, started once for the session."""
    import ray

    from mikgnn.distributed.cluster import connect

    connect()
    yield ray
    ray.shutdown()


def write_movie(root: Path, n_users: int = 30, n_items: int = 40, seed: int = 0) -> Path:
    """A small ML-20M-format dataset: ratings.csv, kg.txt, item_index2entity_id.txt (CRLF)."""
    rng = np.random.default_rng(seed)
    folder = root / "movie"
    folder.mkdir(parents=True, exist_ok=True)
    movie_ids = np.arange(1, n_items + 1) * 10
    with open(folder / "item_index2entity_id.txt", "w", newline="") as f:
        for k, m in enumerate(movie_ids):
            f.write(f"{m}\t{k}\r\n")
    with open(folder / "kg.txt", "w", newline="") as f:
        for k in range(n_items):
            f.write(f"{k}\tfilm.film.genre\t{n_items + k % 5}\r\n")
            f.write(f"{k}\tfilm.film.director\t{n_items + 5 + k % 7}\r\n")
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(1, n_users + 1):
        rated = rng.choice(movie_ids, size=12, replace=False)
        for m in rated:
            lines.append(f"{u},{m},{rng.choice([1.0, 2.5, 3.0, 4.0, 4.5, 5.0])},{1000 + u}")
    lines.append(f"1,{99999},5.0,1")  # a movie without entity: dropped
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return folder


def write_restaurant(root: Path, n_users: int = 20, n_items: int = 15, seed: int = 0) -> Path:
    """A small Dianping-Food (KGNN-LS preprocessed) dataset: ratings_final.txt + kg_final.txt."""
    rng = np.random.default_rng(seed)
    folder = root / "restaurant"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "kg_final.txt", "w") as f:
        for i in range(n_items):
            f.write(f"{i}\t0\t{n_items + i % 4}\n{i}\t1\t{n_items + 4 + i % 3}\n")
    with open(folder / "ratings_final.txt", "w") as f:
        for u in range(n_users):
            for i in rng.choice(n_items, size=6, replace=False):
                f.write(f"{u}\t{i}\t{int(rng.random() < 0.5)}\n")
    return folder


def write_custom(folder: Path, kind: str = "csv", with_map: bool = True) -> Path:
    """A custom dataset folder with string ids."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rows = [(f"u{u}", f"song{(u * 7 + k) % 12}") for u in range(10) for k in range(4)]
    ratings = pd.DataFrame(rows, columns=["user", "item"])
    kg = pd.DataFrame(
        [(f"e_song{i}", "by", f"artist{i % 3}") for i in range(12)]
        + [(f"artist{a}", "from", f"city{a % 2}") for a in range(3)],
        columns=["head", "relation", "tail"],
    )
    item_map = pd.DataFrame([(f"song{i}", f"e_song{i}") for i in range(12)], columns=["item", "entity"])
    if not with_map:
        kg = kg.replace({f"e_song{i}": f"song{i}" for i in range(12)})
    tables = {"ratings": ratings, "kg": kg}
    if with_map:
        tables["item_map"] = item_map
    for name, df in tables.items():
        if kind == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.{kind}", sep="," if kind == "csv" else "\t", index=False)
    return folder


def tiny_data(seed=0, n_users=40, n_items=30, n_attr=6, per_user=6) -> ProcessedDataset:
    """Users like the items of one attribute (genre); the KG links items to attributes."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, n_attr, n_items)
    head = np.concatenate([np.arange(n_items), rng.integers(0, n_items, 20)])
    tail = np.concatenate([n_items + genre, n_items + rng.integers(0, n_attr, 20)])
    relation = np.concatenate([np.zeros(n_items, np.int64), np.ones(20, np.int64)])
    keys = np.unique(np.stack([head, relation, tail], 1), axis=0)
    users, items, labels = [], [], []
    for u in range(n_users):
        liked = np.flatnonzero(genre == u % n_attr)
        other = np.flatnonzero(genre != u % n_attr)
        pos = rng.choice(liked, size=min(per_user, liked.size), replace=False)
        neg = rng.choice(other, size=pos.size, replace=False)
        users += [u] * (2 * pos.size)
        items += list(pos) + list(neg)
        labels += [1] * pos.size + [0] * pos.size
    users, items, labels = map(np.array, (users, items, labels))
    split = rng.permutation(users.size)
    cut1, cut2 = int(0.6 * users.size), int(0.8 * users.size)
    parts = {"train": split[:cut1], "valid": split[cut1:cut2], "test": split[cut2:]}
    splits = {k: {"user": users[v], "item": items[v], "label": labels[v]} for k, v in parts.items()}
    manifest = dict(n_users=n_users, n_items=n_items, n_entities=n_items + n_attr, n_relations=2)
    kg = {"head": keys[:, 0], "relation": keys[:, 1], "tail": keys[:, 2]}
    return ProcessedDataset(splits=splits, kg=kg, manifest=manifest)
