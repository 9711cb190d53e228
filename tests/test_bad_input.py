"""Every bad input gets a clear error naming the file/line/value, and leaves no output behind."""

from __future__ import annotations

import pytest
from conftest import write_custom, write_movie

from mikgnn.datasets import DatasetError, MissingFilesError, get_dataset
from mikgnn.distributed.prepare import prepare

pytestmark = pytest.mark.ray


def _edit(path, line_no, text):
    lines = path.read_text().splitlines(keepends=True)
    lines[line_no - 1] = text
    path.write_text("".join(lines))


def _missing(root):
    (root / "movie" / "kg.txt").unlink()


def _malformed(root):
    _edit(root / "movie" / "ratings.csv", 7, "3,30\n")


def _not_an_id(root):
    _edit(root / "movie" / "ratings.csv", 5, "2,abc,4.0,100\n")


def _nan_id(root):
    _edit(root / "movie" / "ratings.csv", 9, "nan,30,4.0,100\n")


def _negative_id(root):
    _edit(root / "movie" / "ratings.csv", 11, "-4,30,4.0,100\n")


def _duplicate(root):
    path = root / "movie" / "ratings.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + [lines[3]]))


def _unknown_entity(root):
    _edit(root / "movie" / "item_index2entity_id.txt", 4, "40\t777777\r\n")


def _no_usable_row(root):
    path = root / "movie" / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,2.0,5\n2,20,1.0,5\n")


CASES = [
    (_missing, MissingFilesError, "kg.txt"),
    (_malformed, DatasetError, "ratings.csv:7: expected 4 comma-separated fields, found 2"),
    (_not_an_id, DatasetError, "ratings.csv:5: column 'item' is not an integer id"),
    (_nan_id, DatasetError, "ratings.csv:9: column 'user' is empty or NaN"),
    (_negative_id, DatasetError, "ratings.csv:11: column 'user' has a negative id -4"),
    (_duplicate, DatasetError, "duplicate rating of user"),
    (_unknown_entity, DatasetError, "item_index2entity_id.txt:4: item map points at entity '777777'"),
    (_no_usable_row, DatasetError, "ratings.csv: no usable row"),
]


@pytest.mark.parametrize("damage,error,message", CASES, ids=[c[0].__name__[1:] for c in CASES])
def test_bad_movie_input(ray_local, tmp_path, damage, error, message):
    write_movie(tmp_path / "raw")
    damage(tmp_path / "raw")
    out = tmp_path / "out" / "movie"
    with pytest.raises(error) as info:
        prepare(get_dataset("movie", tmp_path / "raw"), out, seed=0, chunk_bytes=64)
    assert message in str(info.value)
    # nothing is left: no output, no staging folder, no half-written file anywhere under tmp_path
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                     if not p.is_relative_to(tmp_path / "raw"))
    assert written in ([], ["out"]), written  # "out": the empty parent the staging folder was made in


def test_failed_rebuild_keeps_the_previous_output(ray_local, tmp_path):
    write_movie(tmp_path / "raw")
    spec = get_dataset("movie", tmp_path / "raw")
    out = tmp_path / "out"
    before = prepare(spec, out, seed=0)
    _malformed(tmp_path / "raw")
    with pytest.raises(DatasetError):
        prepare(get_dataset("movie", tmp_path / "raw"), out, seed=0)
    assert (out / "manifest.json").read_text().count(before["fingerprint"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match="unknown dataset 'moive'.*movie1m"):
        get_dataset("moive")


def test_custom_bad_header(tmp_path):
    folder = write_custom(tmp_path / "c", "csv")
    (folder / "kg.csv").write_text("h,r,t\na,b,c\n")
    with pytest.raises(DatasetError, match=r"kg.csv:1: header .* lacks the column\(s\)"):
        get_dataset(str(folder))


def test_a_quoted_field_of_a_custom_csv_is_one_field(tmp_path):
    """As pandas and spreadsheets write a field that holds the delimiter: in double quotes."""
    from mikgnn.datasets.delimited import read_text_table

    folder = write_custom(tmp_path / "c", "csv")
    (folder / "kg.csv").write_text('"head","relation",tail\n"song, live",genre,"rock ""classic"""\n')
    spec = get_dataset(str(folder))
    table = read_text_table(folder / "kg.csv", spec.kg.fmt)
    assert table.to_pylist() == [{"head": "song, live", "relation": "genre", "tail": 'rock "classic"'}]


def test_custom_parquet_null_id(ray_local, tmp_path):
    import pandas as pd

    folder = write_custom(tmp_path / "c", "parquet")
    df = pd.read_parquet(folder / "ratings.parquet")
    df.loc[5, "user"] = None
    df.to_parquet(folder / "ratings.parquet", index=False)
    with pytest.raises(DatasetError, match=r"ratings.parquet: row 6: column 'user' is null"):
        prepare(get_dataset(str(folder)), tmp_path / "out", seed=0)
    assert not (tmp_path / "out").exists()


def test_labels_of_one_class_and_a_kg_that_names_no_item_are_refused(tmp_path):
    """Both once prepared and trained to a NaN AUC or an unused KG, exit 0: each is now a
    DatasetError naming the file, and nothing is written."""
    from conftest import write_restaurant

    from mikgnn.prepare import prepare as prepare_here

    folder = write_restaurant(tmp_path / "raw")
    rows = (folder / "ratings_final.txt").read_text().splitlines()
    (folder / "ratings_final.txt").write_text("".join(r.rsplit("\t", 1)[0] + "\t0\n" for r in rows))
    with pytest.raises(DatasetError, match="ratings_final.txt: every label is 0: a model cannot learn from one"):
        prepare_here(get_dataset("restaurant", str(tmp_path / "raw")), tmp_path / "p1", seed=0)
    assert not (tmp_path / "p1").exists()

    mine = write_custom(tmp_path / "mine", with_map=False)  # items are matched to the KG's entities by name
    kg = (mine / "kg.csv").read_text().replace("song", "other song")  # the KG names none of them
    (mine / "kg.csv").write_text(kg)
    with pytest.raises(DatasetError, match="no triple names an item .* the KG would be unused"):
        prepare_here(get_dataset(str(mine)), tmp_path / "p2", seed=0)
    assert not (tmp_path / "p2").exists()


def test_a_compressed_file_and_a_looping_link_are_named_with_their_cause(tmp_path):
    import gzip
    import os

    packed = write_custom(tmp_path / "packed")
    (packed / "ratings.csv").write_bytes(gzip.compress((packed / "ratings.csv").read_bytes()))
    with pytest.raises(DatasetError, match="ratings.csv: a gzip-compressed file, not CSV text: decompress it"):
        get_dataset(str(packed))
    looping = write_custom(tmp_path / "looping")
    os.remove(looping / "kg.csv")
    os.symlink("kg.csv", looping / "kg.csv")
    with pytest.raises(DatasetError, match="kg.csv: a symbolic link to 'kg.csv' that leads to no file"):
        get_dataset(str(looping))
