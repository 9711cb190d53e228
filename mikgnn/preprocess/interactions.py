"""Rated rows → (user, item, positive) rows; user re-indexing and duplicate detection (SPEC §2.1–2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mikgnn.datasets.delimited import Chunk
from mikgnn.datasets.errors import DatasetError
from mikgnn.datasets.reading import row_line
from mikgnn.datasets.spec import DatasetSpec

UNMAPPED = "unmapped_item"  # a rated row's raw item id when the item has no entity, else null
EXAMPLES = 5  # ids shown of what preparation drops


def rated_rows(table: pa.Table, chunk: Chunk, spec: DatasetSpec, items: pd.Index | None) -> pa.Table:
    """One chunk of raw ratings → columns user (raw id), item, flag.

    ``flag`` is the 0/1 label for labelled datasets; otherwise 1 for a positive and 0 for an
    item rated below the threshold (kept only so negatives avoid it). With ``items`` (the item
    map), ``item`` is the item index, -1 for an item without an entity, whose raw id is then in
    ``UNMAPPED`` (the rows ``drop_unmapped`` drops and counts).
    """
    users = table.column("user")
    raw_items = table.column("item")
    if spec.labelled:
        labels = table.column("label").to_numpy(zero_copy_only=False)
        bad = np.flatnonzero((labels != 0) & (labels != 1))
        if bad.size:
            row = int(bad[0])
            raise DatasetError(f"{row_line(chunk, spec.ratings, row)}: label must be 0 or 1, "
                               f"found {labels[row]}")
        flag = pa.array(labels.astype(np.int8))
    elif spec.threshold is not None:
        flag = pc.cast(pc.greater_equal(table.column("rating"), spec.threshold), pa.int8())
    else:
        flag = pa.array(np.ones(table.num_rows, dtype=np.int8))
    if items is None:
        return pa.table({"user": users, "item": raw_items, "flag": flag})
    index = items.get_indexer(raw_items.to_numpy(zero_copy_only=False))
    mapped = pa.array(index >= 0)
    return pa.table({  # every row: preparation counts and reports the ones it drops (``drop_unmapped``)
        "user": users,
        "item": pa.array(index.astype(np.int64)),
        "flag": flag,
        UNMAPPED: pc.if_else(mapped, pa.scalar(None, pa.string()), pc.cast(raw_items, pa.string())),
    })


def drop_unmapped(rated: pa.Table) -> tuple[pa.Table, dict]:
    """The rows whose item has an entity, and what was dropped: the rows and items without one
    (with a few of those items' ids)."""
    if UNMAPPED not in rated.column_names:
        return rated, {}
    lost = pc.equal(rated.column("item"), -1)
    names = pc.unique(rated.filter(lost).column(UNMAPPED))
    kept = rated.filter(pc.invert(lost)).drop_columns([UNMAPPED])
    if not len(names):
        return kept, {}
    return kept, {"rows_without_entity": rated.num_rows - kept.num_rows, "items_without_entity": len(names),
                  "item_examples": names[:EXAMPLES].to_pylist()}


@dataclass(frozen=True)
class IndexedRatings:
    """Rated rows with users re-indexed 0..U-1 (sorted raw ids), grouped by user."""

    user: np.ndarray  # [R] int64
    item: np.ndarray  # [R] int64
    flag: np.ndarray  # [R] int8
    n_users: int
    user_ids: np.ndarray  # [U] the raw id of each user index, as text


def index_users(table: pa.Table, spec: DatasetSpec, n_items: int) -> IndexedRatings:
    """Keep users with a usable row, re-index them, reject duplicate (user, item) rows."""
    path = spec.path(spec.ratings)
    if table.num_rows == 0:
        raise DatasetError(f"{path}: no usable row: no rating names an item of the item map")
    users = table.column("user").to_numpy(zero_copy_only=False)
    items = table.column("item").to_numpy(zero_copy_only=False).astype(np.int64)
    flag = table.column("flag").to_numpy(zero_copy_only=False).astype(np.int8)
    kept = users if spec.labelled else users[flag == 1]
    if kept.size == 0:
        raise DatasetError(f"{path}: no usable row: no rating is a positive "
                           f"(threshold {spec.threshold})")
    user_ids = pd.Index(pd.unique(kept)).sort_values()
    codes = user_ids.get_indexer(users)
    mask = codes >= 0
    codes, items, flag = codes[mask].astype(np.int64), items[mask], flag[mask]
    keys = codes * n_items + items
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if dup.size:
        k = int(dup[0])
        raise DatasetError(
            f"{path}: duplicate rating of user '{user_ids[codes[order[k]]]}' for item index "
            f"{items[order[k]]}: each (user, item) pair may appear once"
        )
    return IndexedRatings(codes[order], items[order], flag[order], len(user_ids), user_ids.to_numpy().astype(str))
