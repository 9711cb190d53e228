"""Write a custom dataset folder with a planted signal, shaped like the one of issue 16.

    python benchmarks/synthetic_custom.py --output /tmp/custom-18k      # ~18k users, ~15k items
    python benchmarks/synthetic_custom.py --output /tmp/small --users 2000 --items 1500

Default size: 18,000 users, 15,000 items, ~140k labelled rows (half positives, the negatives
shipped in the file, as that dataset did), ~150k KG triples. The folder is in the README's
custom format with the pitfalls we met in real data: ids are external strings, the KG is
keyed by entity names, not item ids (so an item map is needed), and the rows carry 0/1 labels.

The signal: items fall into 20 hidden clusters; each item links in the KG to 3 of its
cluster's 5 genres, 2 of its cluster's 50 subjects, 1 of ~3,000 makers (each making items
of one cluster) and 4 of 2,000 random tags (noise): 10 triples an item. Each user prefers 2
clusters and draws 85 % of its positives from them, popular items first (Zipf 1.0 inside a
cluster); its negatives are drawn from items it never had. A model that learns
anything beats AUC 0.5 by a margin; one that uses the KG can share what it learns between
the items of a cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

CLUSTERS, GENRES_PER_CLUSTER, SUBJECTS_PER_CLUSTER, MAKERS, TAGS, NOISE_TAGS = 20, 5, 50, 3000, 2000, 4
POPULARITY = 1.0  # Zipf exponent of an item's popularity inside its cluster (real catalogues are heavy-tailed)


def write(folder: Path, n_users: int = 18_000, n_items: int = 15_000, positives: int = 70_000,
          seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cluster = rng.integers(0, CLUSTERS, n_items)
    maker_cluster = rng.integers(0, CLUSTERS, MAKERS)
    makers_of = [np.flatnonzero(maker_cluster == c) for c in range(CLUSTERS)]
    item_ids = np.array([f"tt{1_000_000 + 7 * i}" for i in range(n_items)])
    entity_of_item = np.array([f"m.item{i:05d}" for i in range(n_items)])
    heads, relations, tails = [], [], []
    for i in range(n_items):
        c = cluster[i]
        for g in rng.choice(GENRES_PER_CLUSTER, 3, replace=False):
            heads.append(entity_of_item[i]), relations.append("genre"), tails.append(f"m.genre{c}_{g}")
        for t in rng.choice(SUBJECTS_PER_CLUSTER, 2, replace=False):
            heads.append(entity_of_item[i]), relations.append("subject"), tails.append(f"m.subject{c}_{t}")
        heads.append(entity_of_item[i]), relations.append("made_by")
        tails.append(f"m.maker{rng.choice(makers_of[c])}")
        for t in rng.choice(TAGS, NOISE_TAGS, replace=False):
            heads.append(entity_of_item[i]), relations.append("tag"), tails.append(f"m.tag{t}")
    pd.DataFrame({"head": heads, "relation": relations, "tail": tails}).to_csv(folder / "kg.csv", index=False)
    pd.DataFrame({"item": item_ids, "entity": entity_of_item}).to_csv(folder / "item_map.csv", index=False)
    # popularity inside a cluster: Zipf-like weights
    weight = 1.0 / (1.0 + rng.permutation(n_items)) ** POPULARITY
    members = [np.flatnonzero(cluster == c) for c in range(CLUSTERS)]
    per_user = np.maximum(1, rng.poisson(positives / n_users, n_users))
    users, items, labels = [], [], []
    for u in range(n_users):
        liked = rng.choice(CLUSTERS, 2, replace=False)
        pool = np.concatenate([members[c] for c in liked])
        k = per_user[u]
        from_liked = rng.random(k) < 0.85
        chosen = set()
        p = weight[pool] / weight[pool].sum()
        chosen.update(rng.choice(pool, int(from_liked.sum()), replace=False, p=p).tolist())
        chosen.update(rng.choice(n_items, int((~from_liked).sum()), replace=False).tolist())
        negatives = set()
        while len(negatives) < len(chosen):
            j = int(rng.integers(n_items))
            if j not in chosen:
                negatives.add(j)
        for j, label in [(j, 1) for j in chosen] + [(j, 0) for j in negatives]:
            users.append(f"user{u:06d}"), items.append(item_ids[j]), labels.append(label)
    ratings = pd.DataFrame({"user": users, "item": items, "label": labels})
    ratings.to_csv(folder / "ratings.csv", index=False)
    return {"users": n_users, "items": n_items, "rows": len(ratings), "positives": int(ratings.label.sum()),
            "triples": len(heads)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--users", type=int, default=18_000)
    p.add_argument("--items", type=int, default=15_000)
    p.add_argument("--positives", type=int, default=70_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(write(args.output, args.users, args.items, args.positives, args.seed))


if __name__ == "__main__":
    main()
