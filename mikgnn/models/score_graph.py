"""Every user against every item by propagating over entities: the logits grid [U, I] of a
MIKGNN with a deep receptive field.

A node's vector after iteration i depends on the user, its entity and i only, not on where it
sits in an item's tree: its children are its row of the fixed neighbour tables, and its
start is its raw embedding (SPEC §3). The n^h nodes of every item's tree repeat few entities
(music, n = 8, h = 4: 3,846 items x 4,681 nodes over 9,366 entities), so this scorer updates
each entity once per iteration and user instead of each node:

    S_0 = the items, S_(k+1) = the entities adjacent to S_k         (hop k of any item's field)
    iteration i updates N_i = S_0 ∪ … ∪ S_(h-1-i)                  (hops 0..h-1-i, Eq. 15-22)
    FMK l: iteration i updates hop h-1-i only, N_i = S_(h-1-i), from raw centres

with ``MIKGNN.aggregate`` itself on [U, |N_i|, n] neighbourhoods, so every attention,
aggregator and transform is the one of training. FMK r draws a node's one child against its
parent (``graph.receptive_field_adjusted``), so its vectors depend on the position: it stays
with ``score_grid``, as does any field where this scorer would update more nodes.

Tested equal to ``MIKGNN.forward`` for every variant (tests/test_model.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRAPH_BYTES = 128 << 20  # working memory for one chunk of users


def hop_entities(model, items: torch.Tensor) -> list[torch.Tensor]:
    """The distinct entities at hop k of any item's field, k = 0..h-1 (sorted ids)."""
    hops = [torch.unique(items)]
    for _ in range(model.config.hops - 1):
        hops.append(torch.unique(model.adj_entity[hops[-1]]))
    return hops


def updated_nodes(model, hops: list[torch.Tensor]) -> list[torch.Tensor]:
    """N_i: the entities iteration i updates."""
    h = model.config.hops
    if model.config.layer_by_layer:
        return [hops[h - 1 - i] for i in range(h)]
    return [torch.unique(torch.cat(hops[: h - i])) for i in range(h)]


def graph_cost(model, items: torch.Tensor) -> tuple[int, int]:
    """Node updates per user: (this scorer's, ``score_grid``'s), or (0, 0) where it does not apply."""
    cfg = model.config
    if cfg.adjusted_field or cfg.hops == 1:
        return 0, 0
    graph = sum(len(nodes) for nodes in updated_nodes(model, hop_entities(model, items)))
    grid = sum(items.numel() * model.n ** k for hops in model.schedule for k in hops)
    return graph, grid


@dataclass
class _Iteration:
    """Where iteration i's centres N_i [m] and their children [m n] sit in the vectors it
    reads: the previous iteration's [1 or U, |N_(i-1)|, d], or the entity table [1, E, d]."""

    centre: torch.Tensor  # [m]
    centre_raw: bool
    children: torch.Tensor  # [m n]
    children_raw: bool
    relations: torch.Tensor  # [m n] relation ids


def _plan(model, items: torch.Tensor) -> tuple[list[_Iteration], torch.Tensor]:
    """Each iteration's gathers, and where the items sit in the last one's nodes."""
    nodes = updated_nodes(model, hop_entities(model, items))
    plan = []
    for i, ids in enumerate(nodes):
        children = model.adj_entity[ids].reshape(-1)  # [m n]: all in N_(i-1) (hops one further out)
        before = nodes[i - 1] if i else None
        centre_raw = i == 0 or model.config.layer_by_layer  # FMK l: a hop is updated once, from its start
        plan.append(_Iteration(ids if centre_raw else torch.searchsorted(before, ids), centre_raw,
                               children if i == 0 else torch.searchsorted(before, children), i == 0,
                               model.adj_relation[ids].reshape(-1)))
    return plan, torch.searchsorted(nodes[-1], items)


@torch.no_grad()
def score_graph(model, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Logits of every user against every item [U, I], in chunks of users."""
    plan, item_pos = _plan(model, items)
    per_user = 4 * max(len(it.children) for it in plan) * model.config.dim * 6
    chunk = max(1, GRAPH_BYTES // per_user)
    return torch.cat([_graph_chunk(model, users[s : s + chunk], plan, item_pos)
                      for s in range(0, users.numel(), chunk)])


def _graph_chunk(model, users: torch.Tensor, plan: list[_Iteration], item_pos: torch.Tensor) -> torch.Tensor:
    user = model.user(users)  # [U, d]
    raw = model.entity.weight.unsqueeze(0)  # [1, E, d]: every entity's start
    state = raw  # the previous iteration's nodes: [1 or U, |N_(i-1)|, d]
    for i, it in enumerate(plan):
        centre = (raw if it.centre_raw else state)[:, it.centre]  # [1 or U, m, d]
        children = (raw if it.children_raw else state)[:, it.children]  # [1 or U, m n, d]
        relations = model.relation(it.relations).unsqueeze(0)  # [1, m n, d]
        state, _ = model.aggregate(i, user, centre, children, relations)  # [1 or U, m, d]
    item = state[:, item_pos].expand(user.shape[0], -1, -1)  # v^u  [U, I, d]
    return torch.bmm(item, user.unsqueeze(-1)).squeeze(-1)  # Eq. (23)  [U, I]
