"""Raw files → processed dataset (SPEC §2), the protocol, in one process or on Ray.

Stage 1 (``Executor.parse``): the ratings file is cut into line-aligned byte chunks; each is
parsed, thresholded and mapped to items (``rated_rows``).
Here: users are re-indexed and duplicates rejected (needs the global view); the KG is
re-indexed.
Stage 2 (``Executor.label``): blocks of whole users draw their fixed negatives
(``sample_negatives``); draws are keyed by user, so the result does not depend on the blocks.
Here: the seeded 6:2:2 split, then sharded Parquet written aside and moved into place (a
local folder) or with its manifest last (a URI).

``LocalExecutor`` runs both stages in this process, without Ray; ``mikgnn.distributed.prepare``
runs them as Ray Data tasks. Both give the same files (``tests/test_prepare.py``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from mikgnn.datasets import DatasetError, DatasetSpec
from mikgnn.datasets.delimited import Chunk
from mikgnn.datasets.download import sha256_of
from mikgnn.datasets.reading import load_item_map, raw_chunks, read_raw, read_whole
from mikgnn.preprocess.interactions import EXAMPLES, IndexedRatings, drop_unmapped, index_users, rated_rows
from mikgnn.preprocess.kg import index_kg
from mikgnn.preprocess.negatives import sample_negatives
from mikgnn.preprocess.split import SPLITS, split_assignment
from mikgnn.processed import FORMAT_VERSION, MANIFEST, read_manifest, write_ids, write_manifest, write_table_shards
from mikgnn.storage import Location, atomic_folder, resolve

ROWS_PER_LABEL_BLOCK = 2_000_000
CHUNK_BYTES = 32 << 20


class Executor(Protocol):
    """Runs the two per-block stages; ``start`` is called only when there is something to build."""

    def start(self) -> None: ...

    def parse(self, spec: DatasetSpec, items: pd.Index | None, chunks: list[Chunk]) -> pa.Table: ...

    def label(self, blocks: list[pa.Table], n_items: int, seed: int) -> pa.Table: ...


def parse_chunk(chunk: Chunk, spec: DatasetSpec, items: pd.Index | None) -> pa.Table:
    """One byte chunk of the ratings file → its rated rows (user, item, flag)."""
    return rated_rows(read_raw(chunk, spec.ratings), chunk, spec, items)


def label_block(batch: dict[str, np.ndarray], n_items: int, seed: int) -> dict[str, np.ndarray]:
    """A block of whole users → their positives and sampled negatives, sorted by (user, item)."""
    user, item, positive = batch["user"], batch["item"], batch["flag"] == 1
    neg_user, neg_item = sample_negatives(user, item, positive, n_items, seed)
    users = np.concatenate([user[positive], neg_user])
    items = np.concatenate([item[positive], neg_item])
    labels = np.concatenate([np.ones(positive.sum(), np.int8), np.zeros(neg_user.size, np.int8)])
    order = np.lexsort((items, users))
    return {"user": users[order], "item": items[order], "label": labels[order]}


def concat_rows(tables: Iterable[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({"user": pa.array([], pa.int64()), "item": pa.array([], pa.int64()),
                         "flag": pa.array([], pa.int8())})
    return pa.concat_tables(tables, promote_options="permissive")


class LocalExecutor:
    """Both stages in this process, block after block."""

    def start(self) -> None:
        pass

    def parse(self, spec: DatasetSpec, items: pd.Index | None, chunks: list[Chunk]) -> pa.Table:
        return concat_rows(parse_chunk(c, spec, items) for c in chunks)

    def label(self, blocks: list[pa.Table], n_items: int, seed: int) -> pa.Table:
        parts = [label_block({c: b.column(c).to_numpy() for c in ("user", "item", "flag")}, n_items, seed)
                 for b in blocks]
        return concat_rows(pa.table(p) for p in parts)


def prepare(spec: DatasetSpec, output: str | Path | Location, seed: int, chunk_bytes: int = CHUNK_BYTES,
            executor: Executor | None = None) -> dict:
    """Build (or reuse) the processed dataset of ``spec`` in ``output``; return its manifest.

    ``output`` is a local folder or a URI (``mikgnn.storage``). A manifest with the same
    fingerprint (raw files' checksums, seed, format) is reused as it is."""
    spec.check_present()
    output = resolve(output)
    checksums = raw_checksums(spec)
    print_ = printer()
    fp = fingerprint(spec, checksums, seed)
    existing = read_manifest(output)
    if existing is not None and existing.get("fingerprint") == fp:
        print_(f"reusing {output} (same raw files and seed)")
        return existing
    executor = executor or LocalExecutor()
    executor.start()
    with atomic_folder(output, MANIFEST) as stage:
        manifest = build(spec, stage, seed, chunk_bytes, print_, executor)
        manifest.update(raw_sha256=checksums, fingerprint=fp)
        write_manifest(stage, manifest)
    print_(f"wrote {output}")
    return manifest


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


def build(spec: DatasetSpec, tmp: Location, seed: int, chunk_bytes: int, print_: Callable[[str], None],
          executor: Executor) -> dict:
    """Write the splits and the KG of ``spec`` into ``tmp``; return the manifest's counts."""
    items, item_entities = (load_item_map(spec) if spec.item_map else (None, None))
    rated = executor.parse(spec, items, raw_chunks(spec, spec.ratings, chunk_bytes))
    if rated.num_rows == 0:
        raise DatasetError(f"{spec.path(spec.ratings)}: no usable row (every row of the file is missing or was "
                           "filtered out as a non-positive rating)")
    raw_users = pd.unique(rated.column("user").to_numpy(zero_copy_only=False))
    rated, dropped = drop_unmapped(rated)
    if dropped:
        print_(f"dropped {dropped['rows_without_entity']:,} rated rows: their {dropped['items_without_entity']:,} "
               f"item(s) have no KG entity in {spec.path(spec.item_map)} (e.g. {', '.join(dropped['item_examples'])})")
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
    linked = np.union1d(kg.head[kg.head < n_items], kg.tail[kg.tail < n_items]).size
    if linked == 0:
        raise DatasetError(f"{spec.path(spec.kg)}: no triple names an item ({n_items:,} items): the KG would be "
                           "unused; its head and tail ids must be the items' entities (the item map's second column)")
    if linked < n_items:
        dropped = dropped | {"items_without_kg_edge": n_items - linked}
        print_(f"note: {n_items - linked:,} of {n_items:,} items have no KG triple (they keep only their own "
               "embedding)")
    ratings = index_users(rated, spec, n_items)
    lost = sorted(set(map(str, raw_users)) - set(ratings.user_ids))
    if lost:
        dropped |= {"users_without_rows": len(lost), "user_examples": lost[:EXAMPLES]}
        print_(f"dropped {len(lost):,} user(s) left without a usable row (no positive on an item with an entity; "
               f"e.g. {', '.join(lost[:EXAMPLES])})")
    if spec.labelled:
        labelled = pa.table({"user": ratings.user, "item": ratings.item, "label": ratings.flag})
        if len(np.unique(ratings.flag)) < 2:
            raise DatasetError(f"{spec.path(spec.ratings)}: every label is {int(ratings.flag[0])}: a model cannot "
                               "learn from one class (the file needs positive and negative rows)")
    else:
        labelled = executor.label(user_blocks(ratings, ROWS_PER_LABEL_BLOCK), n_items, seed)
    print_(f"{labelled.num_rows:,} labelled rows")
    assignment = split_assignment(labelled.num_rows, seed)
    empty = [name for k, name in enumerate(SPLITS) if not (assignment == k).any()]
    if empty:
        raise DatasetError(f"{spec.path(spec.ratings)}: {labelled.num_rows:,} labelled row(s) leave the {empty[0]} "
                           "split empty (SPEC's 6:2:2 split of every row): the file needs more rows")
    rows = {}
    for k, name in enumerate(SPLITS):
        part = labelled.filter(pa.array(assignment == k))
        write_table_shards(tmp / name, part)
        rows[name] = part.num_rows
    write_table_shards(tmp / "kg", pa.table({"head": kg.head, "relation": kg.relation, "tail": kg.tail}))
    item_ids = np.asarray(items).astype(str) if items is not None else np.arange(n_items).astype(str)
    write_ids(tmp / "ids", {"users": ratings.user_ids, "items": item_ids, "entities": kg.entity_ids,
                            "relations": kg.relation_names})
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
        "dropped": dropped,
    }


def user_blocks(ratings: IndexedRatings, target_rows: int) -> list[pa.Table]:
    """User-sorted rows cut into blocks of about ``target_rows`` rows of whole users."""
    bounds = user_block_bounds(ratings.user, target_rows)
    return [pa.table({"user": ratings.user[a:b], "item": ratings.item[a:b], "flag": ratings.flag[a:b]})
            for a, b in zip(bounds[:-1], bounds[1:])]


def user_block_bounds(user: np.ndarray, target_rows: int) -> list[int]:
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


def printer() -> Callable[[str], None]:
    start = time.perf_counter()

    def print_(message: str) -> None:
        print(f"[prepare {time.perf_counter() - start:6.1f}s] {message}", flush=True)

    return print_
