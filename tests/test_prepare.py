"""The Ray Data preparation: paper statistics, protocol invariants, formats, reuse, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import write_custom, write_movie, write_restaurant

from mikgnn.datasets import get_dataset
from mikgnn.distributed.prepare import prepare
from mikgnn.processed import load_processed

pytestmark = pytest.mark.ray


def test_music_manifest_matches_the_paper(shared_data, ray_local, tmp_path):
    manifest = prepare(get_dataset("music", shared_data), tmp_path / "music", seed=0)
    expected = dict(n_users=1872, n_items=3846, n_interactions=42346, n_entities=9366,
                    n_relations=60, n_triples=15518)
    assert {k: manifest[k] for k in expected} == expected
    assert sum(manifest["rows"].values()) == 42346
    assert manifest["rows"]["train"] == round(42346 * 0.6)
    written = json.loads((tmp_path / "music" / "manifest.json").read_text())
    assert written["raw_sha256"]["kg.txt"] == (
        "f62bbc8f717c9f68e66dff6faeaa71025092acc11a0f1b4878b953eb05f946a9")


def _rows(folder) -> pd.DataFrame:
    data = load_processed(folder)
    frames = [pd.DataFrame(data.splits[s]).assign(split=s) for s in ("train", "valid", "test")]
    return pd.concat(frames, ignore_index=True)


def test_movie_protocol(ray_local, tmp_path):
    write_movie(tmp_path / "raw")
    manifest = prepare(get_dataset("movie", tmp_path / "raw"), tmp_path / "out", seed=3)
    rows = _rows(tmp_path / "out")
    raw = pd.read_csv(tmp_path / "raw" / "movie" / "ratings.csv")
    item_of = {m: k for k, m in enumerate(np.arange(1, 41) * 10)}
    raw = raw[raw.movieId.isin(item_of)]
    users = sorted(raw[raw.rating >= 4].userId.unique())
    assert manifest["n_users"] == len(users) and manifest["n_items"] == 40
    assert manifest["n_entities"] == 40 + 12 and manifest["n_relations"] == 2
    for u_index, u in enumerate(users):
        mine = raw[raw.userId == u]
        positives = {item_of[m] for m in mine[mine.rating >= 4].movieId}
        rated = {item_of[m] for m in mine.movieId}
        got = rows[rows.user == u_index]
        assert set(got[got.label == 1].item) == positives
        negatives = got[got.label == 0].item
        assert len(negatives) == len(positives) and negatives.is_unique
        assert not set(negatives) & rated  # never rated at all, not only never liked
    counts = rows.split.value_counts()
    assert counts["train"] == round(len(rows) * 0.6) and counts["valid"] == round(len(rows) * 0.2)


def test_same_result_whatever_the_chunking_and_reuse(ray_local, tmp_path):
    write_movie(tmp_path / "raw", n_users=60)
    spec = get_dataset("movie", tmp_path / "raw")
    a = prepare(spec, tmp_path / "a", seed=1)
    b = prepare(spec, tmp_path / "b", seed=1, chunk_bytes=512)  # many Ray Data tasks
    pd.testing.assert_frame_equal(_rows(tmp_path / "a"), _rows(tmp_path / "b"))
    assert a["fingerprint"] == b["fingerprint"]
    stamp = (tmp_path / "a" / "manifest.json").stat().st_mtime_ns
    assert prepare(spec, tmp_path / "a", seed=1)["fingerprint"] == a["fingerprint"]
    assert (tmp_path / "a" / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    c = prepare(spec, tmp_path / "a", seed=2)  # another seed replaces it
    assert c["seed"] == 2 and not _rows(tmp_path / "a").equals(_rows(tmp_path / "b"))


def test_restaurant_rows_are_kept_as_labelled(ray_local, tmp_path):
    folder = write_restaurant(tmp_path / "raw")
    manifest = prepare(get_dataset("restaurant", tmp_path / "raw"), tmp_path / "out", seed=0)
    raw = pd.read_csv(folder / "ratings_final.txt", sep="\t", names=["user", "item", "label"])
    rows = _rows(tmp_path / "out")
    assert manifest["n_interactions"] == len(raw) == len(rows)
    assert rows.label.sum() == raw.label.sum()
    assert manifest["n_items"] == raw.item.max() + 1 and manifest["n_relations"] == 2


@pytest.mark.parametrize("kind,with_map", [("csv", True), ("tsv", True), ("parquet", True),
                                           ("csv", False)])
def test_custom_folder(ray_local, tmp_path, kind, with_map):
    folder = write_custom(tmp_path / "mine", kind, with_map)
    manifest = prepare(get_dataset(str(folder)), tmp_path / "out", seed=0)
    assert manifest["n_users"] == 10 and manifest["n_items"] == 12
    assert manifest["n_triples"] == 15 and manifest["n_relations"] == 2
    assert manifest["n_entities"] == 12 + 3 + 2
    assert manifest["n_interactions"] == 2 * 40


@pytest.mark.parametrize("dataset", ["music", "movie"])
def test_in_process_preparation_writes_what_the_ray_job_writes(shared_data, ray_local, tmp_path, dataset):
    """``mikgnn.prepare`` without Ray and its Ray Data job give the same rows and manifest."""
    from mikgnn.prepare import prepare as prepare_locally

    root = shared_data
    if dataset == "movie":
        root = tmp_path / "raw"
        write_movie(root, n_users=60)
    spec = get_dataset(dataset, root)
    on_ray = prepare(spec, tmp_path / "ray", seed=2, chunk_bytes=1 << 16)
    local = prepare_locally(spec, tmp_path / "local", seed=2, chunk_bytes=1 << 16)
    assert local == on_ray
    ray_data, local_data = load_processed(tmp_path / "ray"), load_processed(tmp_path / "local")
    for split in ("train", "valid", "test"):
        for column in ("user", "item", "label"):
            np.testing.assert_array_equal(local_data.splits[split][column], ray_data.splits[split][column])
    for column in ("head", "relation", "tail"):
        np.testing.assert_array_equal(local_data.kg[column], ray_data.kg[column])


@pytest.mark.parametrize("on_ray", [False, True], ids=["in-process", "ray-data"])
def test_preparation_reports_the_rows_and_users_it_drops(ray_local, tmp_path, capsys, on_ray):
    """Rows whose item has no entity, and users left with no usable row, are counted with a few
    ids on the console and in the manifest, never dropped in silence."""
    from mikgnn.prepare import prepare as prepare_here

    folder = write_movie(tmp_path / "raw")
    with open(folder / "ratings.csv", "a") as f:
        f.write("1,88888,4.0,1\n2,88888,5.0,1\n")  # a second item without entity, rated twice
        f.write("999,10,1.0,1\n999,99999,5.0,1\n")  # a user with a low rating and an item without entity
    spec = get_dataset("movie", str(tmp_path / "raw"))
    manifest = (prepare(spec, tmp_path / "p", seed=0) if on_ray
                else prepare_here(spec, tmp_path / "p", seed=0))
    out = capsys.readouterr().out
    dropped = manifest["dropped"]
    assert dropped["rows_without_entity"] == 4 and dropped["items_without_entity"] == 2
    assert sorted(dropped["item_examples"]) == ["88888", "99999"]
    assert dropped["users_without_rows"] == 1 and dropped["user_examples"] == ["999"]
    assert "dropped 4 rated rows: their 2 item(s) have no KG entity" in out
    assert "dropped 1 user(s) left without a usable row" in out and "e.g. 999" in out
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["dropped"] == dropped
