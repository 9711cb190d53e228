"""Per-hop sets of KG triples grown from seed entities: RippleNet's ripple sets (its Eq. 1-2)
and CKAN's user and item triple sets (its Eq. 3-4).

Hop 1 holds triples whose head is a seed; hop k + 1 those whose head is a tail of hop k. Each
hop keeps ``size`` triples drawn uniformly (with replacement when fewer exist, as both
released codes do); a hop with no triple repeats the previous one, and an object with no seed
starts from ``fallback`` (its own entity, or none). The KG is read as its triples are stored,
head to tail, as both codes read it.

Shapes: N objects, h hops, m triples per hop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TripleSets:
    head: torch.Tensor  # [N, h, m]
    relation: torch.Tensor  # [N, h, m]
    tail: torch.Tensor  # [N, h, m]


def seeds_by_object(objects: np.ndarray, entities: np.ndarray, n_objects: int) -> list[np.ndarray]:
    """The distinct entities of each object 0..N-1 from (object, entity) pairs."""
    order = np.lexsort((entities, objects))
    objects, entities = objects[order], entities[order]
    cuts = np.searchsorted(objects, np.arange(n_objects + 1))
    return [np.unique(entities[cuts[o] : cuts[o + 1]]) for o in range(n_objects)]


def grow(seeds: list[np.ndarray], head: np.ndarray, relation: np.ndarray, tail: np.ndarray, n_entities: int,
         hops: int, size: int, seed: int) -> TripleSets:
    """``hops`` sets of ``size`` triples for every object, grown from its seeds."""
    rng = np.random.default_rng(seed)
    order = np.argsort(head, kind="stable")
    head, relation, tail = head[order], relation[order], tail[order]
    start = np.searchsorted(head, np.arange(n_entities + 1))  # edges of entity e: start[e]:start[e + 1]
    degree = np.diff(start)
    out = np.zeros((3, len(seeds), hops, size), dtype=np.int64)
    for o, entities in enumerate(seeds):
        frontier = entities
        previous = None
        for k in range(hops):
            weights = degree[frontier] if frontier.size else np.zeros(0, np.int64)
            total = int(weights.sum())
            if total == 0:
                if previous is None:  # nothing to propagate from: a self-loop of relation 0 on a seed
                    node = entities[:1] if entities.size else np.zeros(1, np.int64)
                    previous = (np.repeat(node, size), np.zeros(size, np.int64), np.repeat(node, size))
                out[:, o, k] = previous
                continue
            # uniform over the frontier's edges: an entity by its degree, then one of its edges
            pick = rng.integers(0, total, size)
            bounds = np.cumsum(weights)
            which = np.searchsorted(bounds, pick, side="right")
            edge = start[frontier[which]] + pick - (bounds[which] - weights[which])
            previous = (head[edge], relation[edge], tail[edge])
            out[:, o, k] = previous
            frontier = np.unique(tail[edge])
    h, r, t = (torch.from_numpy(a) for a in out)
    return TripleSets(h, r, t)
