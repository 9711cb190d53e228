"""Every user against every item: the logits grid [U, I] of a MIKGNN, fast on CPU.

Top-K evaluation scores U × I pairs; scoring them pair by pair repeats, for every user, the
work that does not depend on the user. Derivation, for iteration 1 at a node c with children
e_j (raw embeddings, so free of the user):

    x = W1 (c + Σ_j w_j e_j) + W2 (c ⊙ Σ_j w_j e_j) + b          Eq. (15)-(16)
      = (W1 c + b) + Σ_j w_j (W1 e_j + W2 (c ⊙ e_j))             linear in the weights w_j
      = base + Σ_j w_j part_j

base [N, d] and part [N, f, d] are computed once per item (``_first_parts``; every aggregator
has its ``linear_parts``), as are the keys the user attends over (r_j ⊙ e_j after φ, or r_j for
KGCN) and the neighbourhood attention α^c (Eq. 20). A chunk of users then pays only the
logits u · keys (one matrix product), their softmax, the θ-mix with α^c (Eq. 21) and the
weighted sum of the parts (one batched product). Iterations 2..h run ``MIKGNN.iterate`` on
the iteration-1 output; a node whose vector does not depend on the user stays per item and
broadcasts against the users (under FMK r, every hop beyond the first: one child, weight 1).

Tested equal to ``MIKGNN.forward`` for every variant (tests/test_model.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRID_BYTES = 128 << 20  # working memory for one chunk of the users x items score grid (h > 1)
GRID_CACHE_BYTES = 16 << 20  # h = 1: small chunks stay in cache and reuse freed memory (2x faster here)


@dataclass
class _FirstParts:
    """The user-free tensors of iteration 1 over N = I m nodes with f children each."""

    base: torch.Tensor  # W1 c + b  [N, d]
    part: torch.Tensor  # per-child pre-activation terms  [N, f, d]
    keys_t: torch.Tensor | None  # what users attend over, transposed  [d, N f]
    a_center: torch.Tensor | None  # neighbourhood attention α^c  [N, f]


@torch.no_grad()
def score_grid(model, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Logits of every user against every item [U, I], in chunks of users."""
    cfg = model.config
    entities, relations = model.field(items)  # hop k: [I, m_k]
    vectors = [model.entity(e) for e in entities]  # [I, m_k, d]
    rel_vectors = [model.relation(r) for r in relations]  # [I, m_(k+1), d]
    parts = {k: _first_parts(model, vectors[k], vectors[k + 1], rel_vectors[k]) for k in model.schedule[0]}
    if cfg.hops == 1:  # per user: a few [I, n] attention maps and [I, d] vectors
        per_user, budget = 4 * items.numel() * (3 * model.n + 2 * cfg.dim), GRID_CACHE_BYTES
    else:  # per user: every node whose vector depends on the user, a few times over
        # (under FMK r only the item and its n hop-1 children do: deeper hops have one child)
        nodes = 1 + model.n if cfg.adjusted_field else sum(v.shape[1] for v in vectors[:-1])
        per_user, budget = 4 * items.numel() * cfg.dim * nodes * 8, GRID_BYTES
    chunk = max(1, budget // per_user)
    return torch.cat([_grid_chunk(model, users[s : s + chunk], vectors, rel_vectors, parts)
                      for s in range(0, users.numel(), chunk)])


def _first_parts(model, center: torch.Tensor, children: torch.Tensor, relations: torch.Tensor) -> _FirstParts:
    """The user-free tensors of iteration 1 at one hop: center [I, m, d], children and
    relations [I, m f, d]."""
    cfg = model.config
    items, m, d = center.shape
    neighbours = children.view(items, m, -1, d)  # [I, m, f, d]
    rel = relations.view(items, m, -1, d)  # [I, m, f, d]
    f = neighbours.shape[2]
    keys, a_center = None, None
    if cfg.attention == "relation":
        keys = rel  # KGCN: logits u · r_j
    elif cfg.attention == "dual":
        keys = rel * neighbours  # r_j ⊙ e_j  [I, m, f, d]
        if not cfg.pruned:
            keys = torch.softmax(keys, dim=-1)  # φ, Eq. (17), (19)
        a_center = torch.softmax((center.unsqueeze(-2) * keys).sum(-1) * model.scale, -1)  # Eq. (20)  [I, m, f]
        a_center = a_center.reshape(items * m, f)  # [I m, f]
    base, part = model.layers[0].linear_parts(center, neighbours)  # [I, m, d], [I, m, f, d]
    if cfg.neighbour_vector == "mean":
        part = part / f
    keys_t = keys.reshape(-1, d).T.contiguous() if keys is not None else None  # [d, I m f]
    return _FirstParts(base.reshape(items * m, d), part.reshape(items * m, f, d), keys_t, a_center)


def _first_iteration(model, user: torch.Tensor, parts: _FirstParts) -> torch.Tensor:
    """Iteration 1's output for every user and node: user [U, d] -> [U, I m, d], or [1, I m, d]
    where it does not depend on the user (later iterations broadcast it, once per item)."""
    cfg = model.config
    nodes, f, _ = parts.part.shape
    if cfg.attention == "uniform" or f == 1:  # w/o att., or one child (weight 1): free of the user
        x = parts.base + parts.part.sum(1) / f  # [I m, d]
        return model.layers[0].activate_(x).unsqueeze(0)  # [1, I m, d]
    logits = (user @ parts.keys_t).view(-1, nodes, f) * model.scale  # Eq. (18)  [U, I m, f]
    weights = softmax_last(logits)  # [U, I m, f]
    if cfg.attention == "dual":
        weights = torch.lerp(parts.a_center.unsqueeze(0), weights, cfg.theta)  # Eq. (21)
    x = torch.bmm(weights.transpose(0, 1), parts.part).transpose(0, 1) + parts.base  # Eq. (15-16)  [U, I m, d]
    return model.layers[0].activate_(x)


def _grid_chunk(model, users: torch.Tensor, vectors: list[torch.Tensor], rel_vectors: list[torch.Tensor],
                parts: dict[int, _FirstParts]) -> torch.Tensor:
    """Logits of a chunk of users against every item: [U, I]."""
    user = model.user(users)  # [U, d]
    n_users, (items, _, d) = user.shape[0], vectors[0].shape
    h = model.config.hops
    if h == 1:
        item = _first_iteration(model, user, parts[0]).expand(n_users, -1, -1)  # [U, I, d]
        return torch.bmm(item, user.unsqueeze(-1)).squeeze(-1)  # Eq. (23)  [U, I]

    # Iterations 2..h on [U, I, m, d] states. A state that does not depend on the user (a hop
    # iteration 1 left alone, or under FMK r every hop beyond 1: one child, weight 1) stays
    # [1, I, m, d] and broadcasts, so it is computed once per item, not once per user.
    state = [v.unsqueeze(0) for v in vectors]  # [1, I, m_k, d]
    for k, p in parts.items():
        state[k] = _first_iteration(model, user, p).view(-1, items, vectors[k].shape[1], d)  # [U or 1, I, m_k, d]
    if not model.config.layer_by_layer:
        state = state[: len(parts)]
    rel_state = [r.unsqueeze(0) for r in rel_vectors[: h - 1]]  # [1, I, m_(k+1), d]
    state, _, _ = model.iterate(user.unsqueeze(1), state, rel_state, first=1)  # user [U, 1, d]
    item = state[0].squeeze(-2).expand(n_users, items, d)  # v^u  [U, I, d]
    return torch.bmm(item, user.unsqueeze(-1)).squeeze(-1)  # Eq. (23)  [U, I]


def softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Softmax over a short last dim, in place (so only without autograd); faster than
    torch.softmax there on CPU."""
    x = (x - x.amax(-1, keepdim=True)).exp_()
    return x.div_(x.sum(-1, keepdim=True))
