"""Neighbour tables and receptive fields (full n^h and FMK r) on small random graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mikgnn.graph import receptive_field, receptive_field_adjusted, sample_neighbours


def _random_kg(seed=0, n_entities=40, n_triples=90, n_relations=4):
    rng = np.random.default_rng(seed)
    head = rng.integers(0, n_entities - 3, n_triples)  # the last 3 entities are isolated
    tail = rng.integers(0, n_entities - 3, n_triples)
    relation = rng.integers(0, n_relations, n_triples)
    return head, relation, tail, n_entities, n_relations


def _edges(head, relation, tail):
    out = {}
    for h, r, t in zip(head.tolist(), relation.tolist(), tail.tolist()):
        out.setdefault(h, []).append((t, r))
        out.setdefault(t, []).append((h, r))
    return out


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_tables_follow_the_sampling_rule(n):
    head, relation, tail, n_e, n_r = _random_kg()
    tables = sample_neighbours(head, relation, tail, n_e, n_r, n, seed=0)
    assert tables.entity.shape == tables.relation.shape == (n_e, n)
    edges = _edges(head, relation, tail)
    for e in range(n_e):
        got = list(zip(tables.entity[e].tolist(), tables.relation[e].tolist()))
        mine = edges.get(e, [])
        if not mine:
            assert got == [(e, n_r)] * n  # isolated: self edge through the extra relation
            continue
        for pair in got:
            assert pair in mine  # undirected: both directions of every triple
        if len(mine) >= n:  # without replacement: no edge drawn more often than it exists
            assert all(got.count(p) <= mine.count(p) for p in got), (got, mine)


def test_tables_are_seeded():
    kg = _random_kg()
    a = sample_neighbours(*kg, n=4, seed=1)
    b = sample_neighbours(*kg, n=4, seed=1)
    c = sample_neighbours(*kg, n=4, seed=2)
    np.testing.assert_array_equal(a.entity, b.entity)
    assert not np.array_equal(a.entity, c.entity)


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_receptive_field_shapes(hops):
    tables = sample_neighbours(*_random_kg(), n=3, seed=0)
    adj_e, adj_r = torch.from_numpy(tables.entity), torch.from_numpy(tables.relation)
    items = torch.tensor([0, 5, 7, 9])
    entities, relations = receptive_field(items, adj_e, adj_r, hops)
    assert [e.shape for e in entities] == [(4, 3**k) for k in range(hops + 1)]
    assert [r.shape for r in relations] == [(4, 3**k) for k in range(1, hops + 1)]
    for k in range(hops):  # hop k+1 holds the table rows of hop k, in order
        torch.testing.assert_close(entities[k + 1], adj_e[entities[k]].reshape(4, -1))
    adjusted, rels = receptive_field_adjusted(items, adj_e, adj_r, hops)
    assert [e.shape for e in adjusted] == [(4, 1)] + [(4, 3)] * hops
    torch.testing.assert_close(adjusted[1], entities[1])  # FMK r coincides at hop 1
    torch.testing.assert_close(rels[0], relations[0])


def test_adjusted_field_does_not_step_back():
    # a path 0-1-2-3 plus a leaf 4 attached to 1: from 1 (reached from 0) the walk must not go back to 0
    head, tail = np.array([0, 1, 2, 1]), np.array([1, 2, 3, 4])
    tables = sample_neighbours(head, np.zeros(4, np.int64), tail, 5, 1, n=2, seed=0)
    adj_e, adj_r = torch.from_numpy(tables.entity), torch.from_numpy(tables.relation)
    entities, _ = receptive_field_adjusted(torch.tensor([0]), adj_e, adj_r, hops=3)
    hop1, hop2 = entities[1][0].tolist(), entities[2][0].tolist()
    assert hop1 == [1, 1]
    assert all(x in (2, 4) for x in hop2)
