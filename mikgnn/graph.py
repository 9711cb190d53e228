"""Fixed-size neighbour tables and receptive fields over the (undirected) KG.

SPEC §2.4–5: every triple gives an edge in both directions with the same relation; each
entity gets a table of n (entity, relation) neighbours, sampled without replacement when
its degree is >= n and with replacement otherwise, from a seed. An entity with no edge is
its own neighbour through the extra relation ``self_relation`` (= n_relations).

SPEC §3 receptive fields for a batch of items, h hops:
- full scheme: hop k holds n^k entities, hop k+1 holds the n neighbours of each of them;
- FMK r (Fig. 3): hop 1 holds n neighbours; every deeper hop takes, for each node, one
  neighbour that is not the node it came from, so every hop has n nodes.
Shapes: B batch, n neighbours, E entities, h hops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class NeighbourTables:
    entity: np.ndarray  # [E, n] int64
    relation: np.ndarray  # [E, n] int64
    self_relation: int  # relation id of the padding self-edge of isolated entities

    @property
    def n_relation_ids(self) -> int:
        """Relation embeddings needed: the KG's relations plus the self relation."""
        return self.self_relation + 1


def undirected_edges(
    head: np.ndarray, relation: np.ndarray, tail: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both directions of every triple: (source [2T], target [2T], relation [2T])."""
    return (
        np.concatenate([head, tail]),
        np.concatenate([tail, head]),
        np.concatenate([relation, relation]),
    )


def sample_neighbours(
    head: np.ndarray,
    relation: np.ndarray,
    tail: np.ndarray,
    n_entities: int,
    n_relations: int,
    n: int,
    seed: int,
) -> NeighbourTables:
    """Seeded neighbour tables [E, n] over the undirected KG."""
    if n < 1:
        raise ValueError(f"neighbour sample size n must be >= 1, got {n}")
    src, dst, rel = undirected_edges(head, relation, tail)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(src.size), src))  # random order inside each source
    dst, rel = dst[order], rel[order]
    degree = np.bincount(src, minlength=n_entities)  # [E]
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])  # [E]

    out_entity = np.repeat(np.arange(n_entities, dtype=np.int64)[:, None], n, axis=1)  # [E, n]
    out_relation = np.full((n_entities, n), n_relations, dtype=np.int64)  # [E, n]
    many = np.flatnonzero(degree >= n)
    cols = start[many, None] + np.arange(n)  # [E_many, n]: first n of a random permutation
    out_entity[many], out_relation[many] = dst[cols], rel[cols]
    few = np.flatnonzero((degree > 0) & (degree < n))
    cols = start[few, None] + (rng.random((few.size, n)) * degree[few, None]).astype(np.int64)
    out_entity[few], out_relation[few] = dst[cols], rel[cols]
    return NeighbourTables(out_entity, out_relation, n_relations)


def receptive_field(
    items: torch.Tensor, adj_entity: torch.Tensor, adj_relation: torch.Tensor, hops: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Full scheme: entities per hop [B, n^k] (k = 0..h) and relations [B, n^k] (k = 1..h)."""
    batch = items.shape[0]
    entities = [items.view(batch, 1)]  # [B, 1]
    relations = []
    for _ in range(hops):
        frontier = entities[-1]  # [B, n^k]
        entities.append(adj_entity[frontier].view(batch, -1))  # [B, n^(k+1)]
        relations.append(adj_relation[frontier].view(batch, -1))  # [B, n^(k+1)]
    return entities, relations


def receptive_field_adjusted(
    items: torch.Tensor, adj_entity: torch.Tensor, adj_relation: torch.Tensor, hops: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """FMK r: hop 0 [B, 1], then every hop [B, n]; deeper hops avoid stepping back."""
    batch = items.shape[0]
    entities = [items.view(batch, 1)]  # [B, 1]
    relations = []
    if hops == 0:
        return entities, relations
    entities.append(adj_entity[items])  # [B, n]
    relations.append(adj_relation[items])  # [B, n]
    for _ in range(1, hops):
        node, parent = entities[-1], entities[-2]  # [B, n], [B, 1 or n]
        candidates = adj_entity[node]  # [B, n, n]
        allowed = candidates != parent.expand_as(node).unsqueeze(-1)  # [B, n, n]
        pick = allowed.to(torch.int8).argmax(dim=-1, keepdim=True)  # [B, n, 1]: first allowed, else 0
        entities.append(candidates.gather(-1, pick).squeeze(-1))  # [B, n]
        relations.append(adj_relation[node].gather(-1, pick).squeeze(-1))  # [B, n]
    return entities, relations
