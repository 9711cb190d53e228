"""A user's own dataset: a folder of ratings, KG triples and an optional item map.

Layout (CSV and TSV files need a header line naming their columns; extra columns are ignored;
a field may be "quoted", as pandas and spreadsheets write one holding the delimiter):

    my_data/
      ratings.csv|tsv|parquet   user, item[, label | rating]
      kg.csv|tsv|parquet        head, relation, tail
      item_map.csv|tsv|parquet  item, entity          (optional)
      dataset.json              {"rating_threshold": 4} (needed when ratings has 'rating')

- ``label`` (0/1): rows are used as labelled; no negatives are sampled.
- ``rating``: rating >= rating_threshold is a positive; negatives are sampled from unrated items.
- neither: every row is a positive; negatives are sampled from items the user never had.
- Without an item map an item's id is its entity's id in the KG.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from mikgnn.datasets.delimited import KEY, NUMBER, SKIP, Column, TextFormat, split_line
from mikgnn.datasets.errors import DatasetError, MissingFilesError, check_readable
from mikgnn.datasets.spec import DatasetSpec, RawFile

_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_SUFFIXES = (".csv", ".tsv", ".parquet")


def custom(folder: Path) -> DatasetSpec:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"custom dataset folder {folder} does not exist")
    ratings = _find(folder, "ratings", required=True)
    kg = _find(folder, "kg", required=True)
    item_map = _find(folder, "item_map", required=False)
    missing = [(f"{stem}.csv|tsv|parquet", "your own data (see README: custom datasets)")
               for stem, found in (("ratings", ratings), ("kg", kg)) if found is None]
    if missing:
        raise MissingFilesError(folder.name, folder, missing)
    ratings_file = _raw(ratings, required=("user", "item"), optional=("label", "rating"))
    names = {c.name for c in ratings_file.fmt.columns if c.kind != SKIP}
    if {"label", "rating"} <= names:
        raise DatasetError(f"{ratings}: has both 'label' and 'rating' columns; keep one")
    threshold = None
    if "rating" in names:
        threshold = _threshold(folder, ratings)
    return DatasetSpec(
        name=folder.name,
        folder=folder,
        ratings=ratings_file,
        kg=_raw(kg, required=("head", "relation", "tail")),
        item_map=_raw(item_map, required=("item", "entity")) if item_map else None,
        threshold=threshold,
        labelled="label" in names,
    )


COMPRESSED = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
              b"\x28\xb5\x2f\xfd": "zstd"}


def _find(folder: Path, stem: str, required: bool) -> Path | None:
    for suffix in _SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_symlink() and not path.exists():
            raise DatasetError(f"{path}: a symbolic link to {os.readlink(path)!r} that leads to no file (it is "
                               "broken, or loops)")
    found = [folder / f"{stem}{s}" for s in _SUFFIXES if (folder / f"{stem}{s}").is_file()]
    if len(found) > 1:
        raise DatasetError(f"{folder}: several '{stem}' files ({', '.join(p.name for p in found)}); "
                           "keep one")
    return found[0] if found else None


def _raw(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> RawFile:
    check_readable(path)
    if path.suffix == ".parquet":
        header = pq.read_schema(path).names
    else:
        with open(path, "rb") as f:
            start = f.read(6)
        packed = next((kind for magic, kind in COMPRESSED.items() if start.startswith(magic)), None)
        if packed is not None:
            raise DatasetError(f"{path}: a {packed}-compressed file, not {path.suffix[1:].upper()} text: "
                               "decompress it first (its name must say what it holds)")
        with open(path, "rb") as f:
            first = f.readline(4096)
        text = first.decode("utf-8", errors="replace")
        if "\ufffd" in text or any(ord(c) < 32 and c not in "\t\r\n" for c in text):
            raise DatasetError(f"{path}:1: not {path.suffix[1:].upper()} text (its first line holds bytes that are "
                               "not UTF-8 text): is it a binary or another encoding? Save it as UTF-8 text")
        try:
            header = [h.strip() for h in split_line(text.rstrip("\r\n"), _DELIMITERS[path.suffix], quoted=True)]
        except ValueError as exc:
            raise DatasetError(f"{path}:1: {exc}") from None
    absent = [c for c in required if c not in header]
    if absent:
        raise DatasetError(f"{path}:1: header {header} lacks the column(s) {absent}; "
                           f"expected {list(required) + [f'[{o}]' for o in optional]}")
    kinds = {name: KEY for name in required}
    kinds.update({"rating": NUMBER, "label": NUMBER})
    wanted = set(required) | set(optional)
    columns = tuple(Column(h, kinds[h] if h in wanted else SKIP) for h in header)
    fmt = TextFormat(_DELIMITERS.get(path.suffix, ","), True, columns, quoted=True)
    return RawFile(path.name, fmt, parquet=path.suffix == ".parquet")


def _threshold(folder: Path, ratings: Path) -> float:
    config = folder / "dataset.json"
    if not config.is_file():
        raise DatasetError(f"{ratings} has a 'rating' column: write {config} with "
                           '{"rating_threshold": <number>} to say which ratings are positive')
    try:
        value = json.loads(config.read_text())["rating_threshold"]
        return float(value)
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{config}: needs a numeric 'rating_threshold' ({exc})") from exc
