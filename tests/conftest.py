"""Shared fixtures: the real data root, a real local Ray, and tiny datasets in official formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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
