"""KG re-indexing (SPEC §2.1): item i is entity i, other entities I..E-1, relations 0..R-1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from mikgnn.datasets.errors import DatasetError
from mikgnn.datasets.spec import DatasetSpec


@dataclass(frozen=True)
class IndexedKG:
    head: np.ndarray  # [T] int64
    relation: np.ndarray  # [T] int64
    tail: np.ndarray  # [T] int64
    n_entities: int
    n_relations: int
    entity_ids: np.ndarray  # [E] the KG's own id of each entity index, as text
    relation_names: np.ndarray  # [R] the KG's name (or id) of each relation index


def _line(spec: DatasetSpec, raw, row: int) -> str:
    offset = 2 if raw.fmt.header else 1
    return f"{spec.path(raw)}:{row + offset}" if not raw.parquet else f"{spec.path(raw)}: row {row + 1}"


def index_kg(table: pa.Table, spec: DatasetSpec, item_entities: np.ndarray | None,
             n_items: int) -> IndexedKG:
    """Re-index the triples; ``item_entities[i]`` is the KG id of item i (None: already indexed)."""
    path = spec.path(spec.kg)
    if table.num_rows == 0:
        raise DatasetError(f"{path}: the knowledge graph has no triple")
    heads = table.column("head").to_numpy(zero_copy_only=False)
    rels = table.column("relation").to_numpy(zero_copy_only=False)
    tails = table.column("tail").to_numpy(zero_copy_only=False)
    triples = pd.DataFrame({"h": heads, "r": rels, "t": tails})
    dup = triples.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DatasetError(f"{_line(spec, spec.kg, row)}: duplicate triple "
                           f"({heads[row]}, {rels[row]}, {tails[row]})")
    if item_entities is None:
        head, tail = heads.astype(np.int64), tails.astype(np.int64)
        relation = rels.astype(np.int64)
        n_entities = int(max(head.max(), tail.max(), n_items - 1)) + 1
        n_relations = int(relation.max()) + 1
        return IndexedKG(head, relation, tail, n_entities, n_relations,
                         np.arange(n_entities).astype(str), np.arange(n_relations).astype(str))
    heads, tails = heads.astype(str), tails.astype(str)
    in_kg = pd.Index(pd.unique(np.concatenate([heads, tails])))
    if spec.item_map is not None:
        unknown = np.flatnonzero(in_kg.get_indexer(item_entities) < 0)
        if unknown.size:
            row = int(unknown[0])
            raise DatasetError(
                f"{_line(spec, spec.item_map, row)}: item map points at entity "
                f"'{item_entities[row]}', which is in no triple of {path} "
                f"({unknown.size} such item(s))"
            )
    interleaved = np.column_stack([heads, tails]).ravel()  # KGCN order: head, tail per line
    order = pd.Index(pd.unique(interleaved))
    others = order[~order.isin(item_entities)]
    entity_index = pd.Index(np.concatenate([item_entities, others.to_numpy().astype(str)]))
    relation_codes, relation_names = pd.factorize(rels)
    return IndexedKG(
        head=entity_index.get_indexer(heads).astype(np.int64),
        relation=relation_codes.astype(np.int64),
        tail=entity_index.get_indexer(tails).astype(np.int64),
        n_entities=len(entity_index),
        n_relations=len(relation_names),
        entity_ids=entity_index.to_numpy().astype(str),
        relation_names=np.asarray(relation_names).astype(str),
    )
