"""The paper's datasets in their official raw formats, with their download addresses.

Checksums are those of the files whose provenance is recorded (KGCN / KGNN-LS / MKR
repositories); where no checksum is published, the file's sha256 is still recorded in
the processed dataset's manifest.
"""

from __future__ import annotations

from pathlib import Path

from mikgnn.datasets.delimited import ID, KEY, NUMBER, SKIP, Column, TextFormat
from mikgnn.datasets.download import RemoteFile
from mikgnn.datasets.spec import DatasetSpec, RawFile

KGCN = "https://raw.githubusercontent.com/hwwang55/KGCN/master/data"
KGNN_LS = "https://raw.githubusercontent.com/hwwang55/KGNN-LS/master/data"
MKR = "https://raw.githubusercontent.com/hwwang55/MKR/master/data"
GROUPLENS = "https://files.grouplens.org/datasets"

# KG as shipped by KGCN / MKR: head<TAB>relation name<TAB>tail, ids in the item map's space.
NAMED_KG = TextFormat("\t", False, (Column("head", KEY), Column("relation", KEY), Column("tail", KEY)))
ITEM_MAP = TextFormat("\t", False, (Column("item", ID), Column("entity", KEY)))


def movie(root: Path) -> DatasetSpec:
    """MovieLens-20M ratings.csv (rating >= 4 is positive) + the KGCN movie KG."""
    return DatasetSpec(
        name="movie",
        folder=root / "movie",
        ratings=RawFile(
            "ratings.csv",
            TextFormat(",", True, (Column("user", ID), Column("item", ID),
                                   Column("rating", NUMBER), Column("timestamp", SKIP))),
        ),
        kg=RawFile("kg.txt", NAMED_KG),
        item_map=RawFile("item_index2entity_id.txt", ITEM_MAP),
        threshold=4.0,
        remotes=(
            RemoteFile("ratings.csv", f"{GROUPLENS}/movielens/ml-20m.zip",
                       member="ml-20m/ratings.csv"),
            RemoteFile("kg.txt", f"{KGCN}/movie/kg.txt"),
            RemoteFile("item_index2entity_id.txt", f"{KGCN}/movie/item_index2entity_id.txt",
                       sha256="204def418fad445b28b8c6ff61590d03e960c2854b66ac893242c2b7e0577834"),
        ),
    )


def music(root: Path) -> DatasetSpec:
    """Last.FM hetrec2011 user_artists.dat (every row positive) + the KGCN music KG."""
    return DatasetSpec(
        name="music",
        folder=root / "music",
        ratings=RawFile(
            "user_artists.dat",
            TextFormat("\t", True, (Column("user", ID), Column("item", ID), Column("weight", SKIP))),
        ),
        kg=RawFile("kg.txt", NAMED_KG),
        item_map=RawFile("item_index2entity_id.txt", ITEM_MAP),
        remotes=(
            RemoteFile("user_artists.dat", f"{KGCN}/music/user_artists.dat",
                       sha256="254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416"),
            RemoteFile("kg.txt", f"{KGCN}/music/kg.txt",
                       sha256="f62bbc8f717c9f68e66dff6faeaa71025092acc11a0f1b4878b953eb05f946a9"),
            RemoteFile("item_index2entity_id.txt", f"{KGCN}/music/item_index2entity_id.txt",
                       sha256="f9693bdde538f755d09b9931b0be662a98965e538658a00c2050912c0adf487b"),
        ),
    )


def restaurant(root: Path) -> DatasetSpec:
    """Dianping-Food as preprocessed by KGNN-LS: labelled ratings_final + indexed kg_final."""
    ids = TextFormat("\t", False, (Column("user", ID), Column("item", ID), Column("label", ID)))
    kg = TextFormat("\t", False, (Column("head", ID), Column("relation", ID), Column("tail", ID)))
    return DatasetSpec(
        name="restaurant",
        folder=root / "restaurant",
        ratings=RawFile("ratings_final.txt", ids),
        kg=RawFile("kg_final.txt", kg),
        labelled=True,
        indexed_kg=True,
        remotes=(
            RemoteFile("ratings_final.txt", f"{KGNN_LS}/restaurant/Dianping-Food.zip",
                       member="ratings_final.txt"),
            RemoteFile("kg_final.txt", f"{KGNN_LS}/restaurant/kg_final.txt",
                       sha256="a42ce6070c32c17e92dcfd72fc3361c8db506998a403f55b1acc489cf8898781"),
        ),
    )


def movie1m(root: Path) -> DatasetSpec:
    """MovieLens-1M positives (ratings_pos.txt: user<TAB>movie, rated >= 4) + the MKR KG."""
    return DatasetSpec(
        name="movie1m",
        folder=root / "movie1m",
        ratings=RawFile("ratings_pos.txt",
                        TextFormat("\t", False, (Column("user", ID), Column("item", ID)))),
        kg=RawFile("kg.txt", NAMED_KG),
        item_map=RawFile("item_index2entity_id.txt", ITEM_MAP),
        remotes=(
            RemoteFile("ratings_pos.txt", f"{GROUPLENS}/movielens/ml-1m.zip"),
            RemoteFile("kg.txt", f"{MKR}/movie/kg.txt",
                       sha256="60d0a28e8646423654b47a36b4438dcd70a87ac90a7d1512ef0cf59f19c869a9"),
            RemoteFile("item_index2entity_id.txt", f"{MKR}/movie/item_index2entity_id.txt",
                       sha256="ba88da11d2fffdcea4fc0d73f1fd16f5478d8fcfb362e16331dc30cceea81f60"),
        ),
        notes="ratings_pos.txt is derived from ML-1M ratings.dat: one 'UserID<TAB>MovieID' line "
        "per rating >= 4, original ids, no header.",
    )


OFFICIAL = {"movie": movie, "music": music, "restaurant": restaurant, "movie1m": movie1m}
