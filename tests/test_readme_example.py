"""The guide's worked example (converting public formats into a custom folder) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import write_movie, write_restaurant

from mikgnn.datasets import get_dataset
from mikgnn.prepare import prepare
from mikgnn.processed import load_processed

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"


def _example() -> dict:
    block = re.search(r"<!-- example: convert -->\n```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert block, "docs/guide.md lost its worked example"
    namespace: dict = {}
    exec(compile(block.group(1), "docs/guide.md", "exec"), namespace)
    return namespace


def test_the_movielens_conversion_keeps_positives_with_an_entity(tmp_path):
    raw = write_movie(tmp_path / "raw")
    _example()["from_movielens_kgcn"](raw, tmp_path / "mine")
    manifest = prepare(get_dataset(str(tmp_path / "mine")), tmp_path / "processed", seed=0)
    ratings = pd.read_csv(raw / "ratings.csv")
    mapped = ratings[ratings.movieId.isin(pd.read_csv(raw / "item_index2entity_id.txt", sep="\t", header=None)[0])]
    assert manifest["n_positives"] == int((mapped.rating >= 4).sum())  # movie 99999 has no entity: dropped
    assert manifest["n_items"] <= 40 and manifest["n_triples"] == 80


def test_the_kgnn_ls_conversion_uses_the_shipped_negatives(tmp_path):
    raw = write_restaurant(tmp_path / "raw")
    _example()["from_kgnn_ls"](raw, tmp_path / "mine")
    manifest = prepare(get_dataset(str(tmp_path / "mine")), tmp_path / "processed", seed=0)
    shipped = pd.read_csv(raw / "ratings_final.txt", sep="\t", names=["user", "item", "label"])
    data = load_processed(tmp_path / "processed")
    labels = np.concatenate([data.splits[s]["label"] for s in ("train", "valid", "test")])
    assert len(labels) == len(shipped) and int(labels.sum()) == int(shipped.label.sum())  # no negatives drawn
    assert manifest["n_interactions"] == len(shipped)


def test_the_readme_is_short_names_the_paper_and_links_only_into_the_repository():
    readme = (GUIDE.parents[1] / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "IEEE Transactions on Big Data" in readme and "Zhu Wang" in readme
    assert not re.search(r"\bissues? \d+", readme)
    for page in (GUIDE.parents[1] / "README.md", GUIDE, GUIDE.parent / "operations.md"):
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            assert "://" not in target, f"{page.name} links out of the repository: {target}"
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
