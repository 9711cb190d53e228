"""Raw files → processed dataset (SPEC §2) as a Ray Data job.

Stage 1 (Ray Data): the ratings file is cut into line-aligned byte chunks; each task parses
its chunk, applies the threshold and the item map (``rated_rows``).
Driver: users are re-indexed and duplicates rejected (needs the global view); the KG is
re-indexed.
Stage 2 (Ray Data): blocks of whole users draw their fixed negatives (``sample_negatives``);
draws are keyed by user, so the result does not depend on the partitioning.
Driver: the seeded 6:2:2 split, then sharded Parquet written aside and renamed into place (a
local folder) or with its manifest last (a URI). On a multi-node cluster the tasks stay on the
driver's node, which alone needs the raw files; the output goes to shared storage.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import ray

from mikgnn.datasets import DatasetError, DatasetSpec
from mikgnn.datasets.delimited import Chunk
from mikgnn.datasets.download import fetch, sha256_of
from mikgnn.datasets.reading import load_item_map, raw_chunks, read_raw, read_whole
from mikgnn.distributed.cluster import connect
from mikgnn.preprocess.interactions import IndexedRatings, index_users, rated_rows
from mikgnn.preprocess.kg import index_kg
from mikgnn.preprocess.negatives import sample_negatives
from mikgnn.preprocess.split import SPLITS, split_assignment
from mikgnn.processed import FORMAT_VERSION, MANIFEST, read_manifest, write_manifest, write_table_shards
from mikgnn.storage import Location, atomic_folder, resolve

ROWS_PER_LABEL_BLOCK = 2_000_000

NODE_ID_LABEL = "ray.io/node-id"  # the label Ray gives every node: its node id


def download_missing(spec: DatasetSpec) -> None:
    """Fetch every absent raw file that has an official download address."""
    for raw in spec.files:
        remote = spec.remote(raw.name)
        if not spec.path(raw).is_file() and remote is not None:
            print(f"downloading {remote.url} -> {spec.path(raw)}", flush=True)
            fetch(remote, spec.folder)


def raw_checksums(spec: DatasetSpec) -> dict[str, str]:
    """sha256 of every raw file; a file that differs from the official one is reported."""
    sums = {}
    for raw in spec.files:
        remote = spec.remote(raw.name)
        sums[raw.name] = sha256_of(spec.path(raw))
        if remote is not None and remote.sha256 not in (None, sums[raw.name]):
            print(f"warning: {spec.path(raw)} differs from the official file "
                  f"(sha256 {sums[raw.name][:12]}…, official {remote.sha256[:12]}…)",
                  file=sys.stderr, flush=True)
    return sums


def fingerprint(spec: DatasetSpec, checksums: dict[str, str], seed: int) -> str:
    key = {
        "format_version": FORMAT_VERSION,
        "dataset": spec.name,
        "raw_sha256": checksums,
        "seed": seed,
        "threshold": spec.threshold,
        "labelled": spec.labelled,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def prepare(spec: DatasetSpec, output: str | Path | Location, seed: int, chunk_bytes: int = 32 << 20,
            address: str | None = None) -> dict:
    """Build (or reuse) the processed dataset of ``spec`` in ``output``; return its manifest.

    ``output`` is a local folder or a URI (``mikgnn.storage``). It is built once, by the driver
    that calls this, wherever the cluster's nodes are: on a multi-node cluster give shared
    storage, which every worker then reads. Ray is joined (``address``) or started only when
    there is something to build.
    """
    spec.check_present()
    output = resolve(output)
    checksums = raw_checksums(spec)
    print_ = _printer()
    fp = fingerprint(spec, checksums, seed)
    existing = read_manifest(output)
    if existing is not None and existing.get("fingerprint") == fp:
        print_(f"reusing {output} (same raw files and seed)")
        return existing
    connect(address)
    with atomic_folder(output, MANIFEST) as stage:
        manifest = _build(spec, stage, seed, chunk_bytes, print_)
        manifest.update(raw_sha256=checksums, fingerprint=fp)
        write_manifest(stage, manifest)
    print_(f"wrote {output}")
    return manifest


def _configure_ray_data() -> None:
    """Set before any dataset is created: datasets capture the context when built."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the split depends on row order
    ctx.raise_original_map_exception = True  # our DatasetError, not a UserCodeException


def _build(spec: DatasetSpec, tmp: Location, seed: int, chunk_bytes: int, print_) -> dict:
    _configure_ray_data()
    items, item_entities = (load_item_map(spec) if spec.item_map else (None, None))
    rated = _run(_read_ratings(spec, items, chunk_bytes))
    print_(f"parsed {rated.num_rows:,} rated rows")
    if rated.num_rows == 0:
        raise DatasetError(f"{spec.path(spec.ratings)}: no usable row: no rating names an item "
                           "of the item map")
    if spec.item_map is None and not spec.indexed_kg:
        items = pd.Index(pd.unique(rated.column("item").to_numpy(zero_copy_only=False))).sort_values()
        item_entities = items.to_numpy().astype(str)
        codes = items.get_indexer(rated.column("item").to_numpy(zero_copy_only=False))
        rated = rated.set_column(1, "item", pa.array(codes.astype(np.int64)))
    kg_table = read_whole(spec, spec.kg)
    if items is not None:
        n_items = len(items)
    else:
        n_items = int(pa.compute.max(rated.column("item")).as_py()) + 1 if rated.num_rows else 0
    kg = index_kg(kg_table, spec, item_entities, n_items)
    if n_items > kg.n_entities:
        raise DatasetError(f"{spec.path(spec.ratings)}: item id {n_items - 1} is not an entity "
                           f"of {spec.path(spec.kg)} ({kg.n_entities} entities)")
    ratings = index_users(rated, spec, n_items)
    if spec.labelled:
        labelled = pa.table({"user": ratings.user, "item": ratings.item, "label": ratings.flag})
    else:
        labelled = _run(_label(ratings, n_items, seed))
    print_(f"{labelled.num_rows:,} labelled rows")
    assignment = split_assignment(labelled.num_rows, seed)
    rows = {}
    for k, name in enumerate(SPLITS):
        part = labelled.filter(pa.array(assignment == k))
        write_table_shards(tmp / name, part)
        rows[name] = part.num_rows
    write_table_shards(tmp / "kg", pa.table({"head": kg.head, "relation": kg.relation,
                                             "tail": kg.tail}))
    return {
        "dataset": spec.name,
        "format_version": FORMAT_VERSION,
        "n_users": ratings.n_users,
        "n_items": n_items,
        "n_interactions": labelled.num_rows,
        "n_positives": int((labelled.column("label").to_numpy() == 1).sum()),
        "n_entities": kg.n_entities,
        "n_relations": kg.n_relations,
        "n_triples": len(kg.head),
        "rows": rows,
        "seed": seed,
        "threshold": spec.threshold,
    }


def _read_ratings(spec: DatasetSpec, items: pd.Index | None, chunk_bytes: int):
    chunks = raw_chunks(spec, spec.ratings, chunk_bytes)
    raw = spec.ratings

    def parse(batch: pa.Table) -> pa.Table:
        row = batch.to_pylist()[0]
        chunk = Chunk(row["path"], row["start"], row["end"])
        return rated_rows(read_raw(chunk, raw), chunk, spec, items)

    ds = ray.data.from_items(
        [{"path": c.path, "start": c.start, "end": c.end} for c in chunks],
        override_num_blocks=len(chunks),
    )
    return ds.map_batches(parse, batch_size=1, batch_format="pyarrow", label_selector=_on_this_node())


def _label(ratings: IndexedRatings, n_items: int, seed: int):
    """Ray Data over blocks of whole users: positives + their sampled negatives."""
    bounds = _user_block_bounds(ratings.user, ROWS_PER_LABEL_BLOCK)
    blocks = [
        pa.table({"user": ratings.user[a:b], "item": ratings.item[a:b], "flag": ratings.flag[a:b]})
        for a, b in zip(bounds[:-1], bounds[1:])
    ]

    def label(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        user, item, positive = batch["user"], batch["item"], batch["flag"] == 1
        neg_user, neg_item = sample_negatives(user, item, positive, n_items, seed)
        users = np.concatenate([user[positive], neg_user])
        items_ = np.concatenate([item[positive], neg_item])
        labels = np.concatenate([np.ones(positive.sum(), np.int8), np.zeros(neg_user.size, np.int8)])
        order = np.lexsort((items_, users))
        return {"user": users[order], "item": items_[order], "label": labels[order]}

    return ray.data.from_arrow(blocks).map_batches(label, batch_size=None, batch_format="numpy",
                                                   label_selector=_on_this_node())


def _on_this_node() -> dict[str, str]:
    """Preparation tasks run on the driver's node: the raw files only need to be there (the head
    node, for a job submitted to a cluster), and the output is written once, by the driver. A
    label selector on Ray's node-id label (Ray Data's named option; ``scheduling_strategy``
    through ``ray_remote_args`` is deprecated)."""
    return {NODE_ID_LABEL: ray.get_runtime_context().get_node_id()}


def _user_block_bounds(user: np.ndarray, target_rows: int) -> list[int]:
    """Row offsets that cut user-sorted rows into blocks of about target_rows whole users."""
    bounds = [0]
    while bounds[-1] < user.size:
        cut = min(bounds[-1] + target_rows, user.size)
        if cut < user.size:
            cut = int(np.searchsorted(user, user[cut], side="left"))
            if cut <= bounds[-1]:
                cut = int(np.searchsorted(user, user[bounds[-1]], side="right"))
        bounds.append(cut)
    return bounds


def _run(ds) -> pa.Table:
    """Execute a Ray Data dataset in order and gather it, surfacing our own input errors."""
    try:
        tables = ray.get(ds.to_arrow_refs())
    except Exception as exc:  # Ray wraps task errors; find the DatasetError inside
        cause = _dataset_error(exc)
        if cause is None:
            raise
        raise DatasetError(str(cause)) from None
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({"user": pa.array([], pa.int64()), "item": pa.array([], pa.int64()),
                         "flag": pa.array([], pa.int8())})
    return pa.concat_tables(tables, promote_options="permissive")


def _dataset_error(exc: BaseException) -> BaseException | None:
    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DatasetError) and not isinstance(e, ray.exceptions.RayError):
            return e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None


def _printer():
    start = time.perf_counter()

    def print_(message: str) -> None:
        print(f"[prepare {time.perf_counter() - start:6.1f}s] {message}", flush=True)

    return print_
