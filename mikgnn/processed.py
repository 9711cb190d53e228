"""The processed dataset folder: sharded Parquet splits, the KG, and manifest.json.

    <dir>/train/part-00000.parquet ...   user, item, label   (also valid/, test/)
    <dir>/kg/part-00000.parquet          head, relation, tail (each triple once; the graph
                                         layer treats it as undirected)
    <dir>/manifest.json

A folder appears atomically: it is written aside and renamed into place, so a crash
leaves either the previous folder or none, never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mikgnn.preprocess.split import SPLITS

FORMAT_VERSION = 1
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


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_table_shards(folder: Path, table: pa.Table, rows_per_shard: int = ROWS_PER_SHARD) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, -(-table.num_rows // rows_per_shard))
    for k in range(n_shards):
        part = table.slice(k * rows_per_shard, rows_per_shard)
        pq.write_table(part, folder / f"part-{k:05d}.parquet")
    return n_shards


def publish(tmp: Path, final: Path) -> None:
    """Rename a completely written folder into place, replacing an older one."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def staging_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def load_processed(folder: str | os.PathLike) -> ProcessedDataset:
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(
            f"{folder} is not a processed dataset (no {MANIFEST}); run pipelines/prepare.py first"
        )
    splits = {name: _read_columns(folder / name) for name in SPLITS}
    return ProcessedDataset(splits=splits, kg=_read_columns(folder / "kg"), manifest=manifest)


def _read_columns(folder: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(sorted(str(p) for p in folder.glob("part-*.parquet")))
    return {name: table.column(name).to_numpy() for name in table.column_names}


def save_processed(data: ProcessedDataset, folder: str | os.PathLike) -> Path:
    """Write a dataset built in memory as a processed folder (atomically)."""
    final = Path(folder)
    tmp = staging_dir(final)
    try:
        for name, columns in data.splits.items():
            write_table_shards(tmp / name, pa.table({c: np.asarray(v) for c, v in columns.items()}))
        write_table_shards(tmp / "kg", pa.table({c: np.asarray(v) for c, v in data.kg.items()}))
        (tmp / MANIFEST).write_text(json.dumps(data.manifest, indent=2) + "\n")
        publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
