"""The processed dataset folder: sharded Parquet splits, the KG, and manifest.json.

    <dir>/train/part-00000.parquet ...   user, item, label   (also valid/, test/)
    <dir>/kg/part-00000.parquet          head, relation, tail (each triple once; the graph
                                         layer treats it as undirected)
    <dir>/ids/users.parquet ...          id: the dataset's own id of each index (users, items,
                                         entities, relations), for output in the original ids
    <dir>/manifest.json

The folder may be local or a URI (``mikgnn.storage``). It appears atomically: a crash leaves
either the previous folder or none, never a half-written one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mikgnn.preprocess.split import SPLITS
from mikgnn.storage import Location, atomic_folder, resolve

FORMAT_VERSION = 2  # 2: the ids/ maps
ROWS_PER_SHARD = 1_000_000
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ProcessedDataset:
    """A processed dataset in memory: labelled rows per split, the KG triples, the manifest."""

    splits: dict[str, dict[str, np.ndarray]]  # split -> {"user","item","label"} [rows]
    kg: dict[str, np.ndarray]  # {"head","relation","tail"} [T]
    manifest: dict

    @property
    def n_users(self) -> int:
        return int(self.manifest["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["n_items"])

    @property
    def n_entities(self) -> int:
        return int(self.manifest["n_entities"])

    @property
    def n_relations(self) -> int:
        return int(self.manifest["n_relations"])


def read_manifest(folder: str | os.PathLike | Location) -> dict | None:
    path = resolve(folder) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_manifest(folder: Location, manifest: dict) -> None:
    """Written last: the manifest is what makes a folder a processed dataset."""
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def write_table_shards(folder: Location, table: pa.Table, rows_per_shard: int = ROWS_PER_SHARD) -> int:
    folder.mkdir()
    n_shards = max(1, -(-table.num_rows // rows_per_shard))
    for k in range(n_shards):
        part = table.slice(k * rows_per_shard, rows_per_shard)
        pq.write_table(part, (folder / f"part-{k:05d}.parquet").path, filesystem=folder.fs)
    return n_shards


ID_MAPS = ("users", "items", "entities", "relations")


def write_ids(folder: Location, maps: dict[str, np.ndarray]) -> None:
    """The original id of every index, one Parquet file per kind (``ID_MAPS``)."""
    folder.mkdir()
    for name in ID_MAPS:
        pq.write_table(pa.table({"id": pa.array(np.asarray(maps[name]).astype(str))}),
                       (folder / f"{name}.parquet").path, filesystem=folder.fs)


def read_ids(folder: str | os.PathLike | Location) -> dict[str, np.ndarray]:
    """The id maps of a processed dataset: kind -> [n] original ids (index -> id)."""
    location = resolve(folder) / "ids"
    if not (location / "users.parquet").is_file():
        raise FileNotFoundError(f"{resolve(folder)} holds no id maps (ids/): it was prepared by an older version; "
                                "delete it and run pipelines/prepare.py again")
    return {name: pq.read_table((location / f"{name}.parquet").path, filesystem=location.fs)
            .column("id").to_numpy(zero_copy_only=False) for name in ID_MAPS}


def load_processed(folder: str | os.PathLike | Location, splits: tuple[str, ...] = SPLITS) -> ProcessedDataset:
    """The dataset in memory: the KG and the labelled rows of ``splits`` (all three by default)."""
    location = resolve(folder)
    manifest = read_manifest(location)
    if manifest is None:
        raise FileNotFoundError(
            f"{location} is not a processed dataset (no {MANIFEST}); run pipelines/prepare.py first"
        )
    rows = {name: _read_columns(location / name) for name in splits}
    return ProcessedDataset(splits=rows, kg=_read_columns(location / "kg"), manifest=manifest)


def read_split_table(folder: str | os.PathLike | Location, split: str) -> pa.Table:
    """One split (or the KG) of a processed dataset as one Arrow table."""
    return _read_table(resolve(folder) / split)


def _read_table(folder: Location) -> pa.Table:
    parts = [f.path for f in folder.files("part-", ".parquet")]
    return pq.read_table(parts, filesystem=folder.fs)


def _read_columns(folder: Location) -> dict[str, np.ndarray]:
    table = _read_table(folder)
    return {name: table.column(name).to_numpy() for name in table.column_names}


def save_processed(data: ProcessedDataset, folder: str | os.PathLike | Location) -> Location:
    """Write a dataset built in memory as a processed folder (atomically)."""
    final = resolve(folder)
    with atomic_folder(final, MANIFEST) as stage:
        for name, columns in data.splits.items():
            write_table_shards(stage / name, pa.table({c: np.asarray(v) for c, v in columns.items()}))
        write_table_shards(stage / "kg", pa.table({c: np.asarray(v) for c, v in data.kg.items()}))
        write_manifest(stage, data.manifest)
    return final
