"""MI-KGNN: "Multi-Interaction Knowledge Graph Neural Network" (the paper in shared/paper).

One propagation model; the paper's variants (Tables 5-7) and the KGCN baselines are
configurations of it (``mikgnn.config``). Symbols: B batch, U users, I items, n neighbours
per entity, h hops, d embedding dim, m nodes at a hop, f children per node (n, or 1 at the
deeper hops of FMK r).

For a central node c with neighbours (r_j, e_j) and user u (SPEC §3):
    m_j   = φ(r_j ⊙ e_j), φ = softmax over features             Eq. (17), (19); identity: Eq. (25)
    α^u_j = softmax_j(u · m_j), α^c_j = softmax_j(c · m_j)       Eq. (18), (20)
    w_j   = θ α^u_j + (1 − θ) α^c_j                              Eq. (21), (22)
    c_N   = Σ_j w_j e_j   (or its mean over the n neighbours)     Eq. (15)
    c'    = σ(W1 (c + c_N) + W2 (c ⊙ c_N) + b)                  Eq. (16); ReLU, tanh last
            (W1 = W2 = I, b = 0 under the identity transform)
    ŷ     = σ(u · v^u)                                           Eq. (23)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mikgnn.config import ModelConfig
from mikgnn.graph import receptive_field, receptive_field_adjusted

GRID_BYTES = 64 << 20  # working memory for one chunk of the users x items score grid (h > 1)
GRID_CACHE_BYTES = 16 << 20  # h = 1: small chunks stay in cache and reuse freed memory (2x faster here)


class Aggregator(nn.Module):
    """One iteration's aggregation: Eq. (16) or KGCN's sum / concat / neighbor.

    transform "learned": W1, W2 and b are trained (the paper). "identity": W1 = W2 = I and
    b = 0, fixed, so Eq. (16) becomes σ(c + c_N + c ⊙ c_N) and the layer has no parameters
    (no feature transformation, as in LightGCN; measured in docs/model.md)."""

    def __init__(self, dim: int, kind: str, last: bool, transform: str = "learned"):
        super().__init__()
        self.kind, self.last, self.identity = kind, last, transform == "identity"
        self.w1: nn.Linear | None = None
        self.w2: nn.Linear | None = None
        if not self.identity:
            self.w1 = nn.Linear(2 * dim if kind == "concat" else dim, dim)  # W1 and b
            self.w2 = nn.Linear(dim, dim, bias=False) if kind == "interaction" else None
            nn.init.xavier_uniform_(self.w1.weight)
            nn.init.zeros_(self.w1.bias)
            if self.w2 is not None:
                nn.init.xavier_uniform_(self.w2.weight)

    def _w1(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else self.w1(x)

    def _w2(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else self.w2(x)

    def forward(self, center: torch.Tensor, c_n: torch.Tensor) -> torch.Tensor:
        if self.kind == "interaction":
            x = self._w1(center + c_n) + self._w2(center * c_n)  # Eq. (16)  [..., d]
        elif self.kind == "sum":
            x = self._w1(center + c_n)  # [..., d]
        elif self.kind == "concat":
            center, c_n = torch.broadcast_tensors(center, c_n)
            x = self.w1(torch.cat([center, c_n], dim=-1))  # [..., d]
        else:
            x = self._w1(c_n).expand(torch.broadcast_shapes(center.shape, c_n.shape))  # [..., d]
        return self.activate(x)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) if self.last else F.relu(x)

    def activate_(self, x: torch.Tensor) -> torch.Tensor:
        """``activate`` in place, for evaluation. tanh(x) = 2 σ(2x) − 1: torch's CPU sigmoid is
        about 4x faster than its tanh, which was a third of the one-hop score grid; the
        result differs from torch.tanh by at most 2e-7."""
        return x.mul_(2).sigmoid_().mul_(2).sub_(1) if self.last else x.relu_()

    def linear_parts(self, center: torch.Tensor, neighbours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pre-activation is linear in the neighbour weights w_j:
        x = base + Σ_j w_j · part_j, with base [..., d] and part [..., f, d] free of the user.
        For Eq. (16): base = W1 c + b, part_j = W1 e_j + W2 (c ⊙ e_j)."""
        d = center.shape[-1]
        if self.kind == "concat":
            w_center, w_neigh = self.w1.weight[:, :d], self.w1.weight[:, d:]
            return center @ w_center.T + self.w1.bias, neighbours @ w_neigh.T
        if self.kind == "neighbor":
            if self.identity:
                return torch.zeros_like(center), neighbours
            return self.w1.bias.expand_as(center), self.w1(neighbours) - self.w1.bias
        base = self._w1(center)  # [..., d]
        part = neighbours if self.identity else neighbours @ self.w1.weight.T  # [..., f, d]
        if self.kind == "interaction":
            part = part + self._w2(center.unsqueeze(-2) * neighbours)  # [..., f, d]
        return base, part


@dataclass
class Propagation:
    """What one forward pass computed, for the loss, L2 and diagnostics."""

    user: torch.Tensor  # [B, d]
    item: torch.Tensor  # [B, d]  v^u
    entities: list[torch.Tensor]  # hop k: [B, m_k]
    first_weights: list[torch.Tensor]  # attention of iteration 1 at hop k: [B, m_k, f_k]
    hop0_weights: torch.Tensor  # final attention over the item's neighbours: [B, 1, f_0]
    embedded: list[torch.Tensor]  # looked-up rows, for batch-only L2


class MIKGNN(nn.Module):
    def __init__(self, *, n_users: int, n_entities: int, n_relations: int,
                 adj_entity: torch.Tensor, adj_relation: torch.Tensor, config: ModelConfig):
        super().__init__()
        self.config = config
        d, h = config.dim, config.hops
        self.register_buffer("adj_entity", adj_entity, persistent=False)  # [E, n]
        self.register_buffer("adj_relation", adj_relation, persistent=False)  # [E, n]
        self.user = nn.Embedding(n_users, d)
        self.entity = nn.Embedding(n_entities, d)
        self.relation = nn.Embedding(n_relations, d)
        for table in (self.user, self.entity, self.relation):
            if config.init_std is None:
                nn.init.xavier_uniform_(table.weight)
            else:
                nn.init.normal_(table.weight, std=config.init_std)
        kind = config.aggregator
        self.layers = nn.ModuleList(Aggregator(d, kind, last=i == h - 1, transform=config.transform)
                                    for i in range(h))
        self.scale = config.logit_scale / (d if config.logits == "mean" else 1.0)

    # attention --------------------------------------------------------------------------
    def attention(self, user: torch.Tensor, center: torch.Tensor, neighbours: torch.Tensor,
                  relations: torch.Tensor) -> torch.Tensor:
        """Weights over each node's f children: user [B, d], center [B, m, d],
        neighbours/relations [B, m, f, d] -> [B, m, f]."""
        cfg = self.config
        f = neighbours.shape[-2]
        if cfg.attention == "uniform":
            return neighbours.new_full(neighbours.shape[:-1], 1.0 / f)  # w/o att.  [B, m, f]
        u = user[:, None, None, :]  # [B, 1, 1, d]
        if cfg.attention == "relation":
            return torch.softmax((u * relations).sum(-1) * self.scale, dim=-1)  # KGCN  [B, m, f]
        message = relations * neighbours  # r_j ⊙ e_j  [B, m, f, d]
        if not cfg.pruned:
            message = torch.softmax(message, dim=-1)  # φ, Eq. (17), (19)  [B, m, f, d]
        a_user = torch.softmax((u * message).sum(-1) * self.scale, dim=-1)  # Eq. (18)  [B, m, f]
        a_center = torch.softmax((center.unsqueeze(-2) * message).sum(-1) * self.scale, dim=-1)  # Eq. (20)
        return cfg.theta * a_user + (1.0 - cfg.theta) * a_center  # Eq. (21)  [B, m, f]

    def _aggregate(self, i: int, user: torch.Tensor, center: torch.Tensor, children: torch.Tensor,
                   relations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, m, d = center.shape
        neighbours = children.view(batch, m, -1, d)  # [B, m, f, d]
        rel = relations.view(batch, m, -1, d)  # [B, m, f, d]
        weights = self.attention(user, center, neighbours, rel)  # [B, m, f]
        c_n = (weights.unsqueeze(-1) * neighbours).sum(-2)  # Eq. (15)  [B, m, d]
        if self.config.neighbour_vector == "mean":
            c_n = c_n / neighbours.shape[-2]
        return self.layers[i](center, c_n), weights  # [B, m, d], [B, m, f]

    # forward ----------------------------------------------------------------------------
    def propagate(self, users: torch.Tensor, items: torch.Tensor) -> Propagation:
        entities, relations = self._field(items)
        user = self.user(users)  # [B, d]
        vectors = [self.entity(e) for e in entities]  # hop k: [B, m_k, d]
        rel_vectors = [self.relation(r) for r in relations]  # hop k+1: [B, m_(k+1), d]
        embedded = [user, *vectors, *rel_vectors]
        vectors, first_weights, hop0 = self._iterate(user, vectors, rel_vectors, first=0)
        return Propagation(user, vectors[0].squeeze(1), entities, first_weights, hop0, embedded)

    def _field(self, items: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        field = receptive_field_adjusted if self.config.adjusted_field else receptive_field
        return field(items, self.adj_entity, self.adj_relation, self.config.hops)

    def _updated_hops(self, i: int) -> list[int]:
        """The hops iteration i updates, each from the hop below it: all of 0..h-1-i in the
        full scheme, only hop h-1-i under FMK l (layer by layer)."""
        h = self.config.hops
        return [h - 1 - i] if self.config.layer_by_layer else list(range(h - i))

    def _iterate(self, user: torch.Tensor, vectors: list[torch.Tensor], rel_vectors: list[torch.Tensor],
                 first: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
        """Iterations first..h-1 of the propagation; hop k's vectors [B, m_k, d]."""
        first_weights: list[torch.Tensor] = []
        hop0 = None
        for i in range(first, self.config.hops):
            hops = self._updated_hops(i)
            updated = list(vectors)
            for k in hops:
                updated[k], w = self._aggregate(i, user, vectors[k], vectors[k + 1], rel_vectors[k])
                if i == 0 or self.config.layer_by_layer:  # each hop's first update
                    first_weights.append(w)
                if k == 0:
                    hop0 = w
            vectors = updated if self.config.layer_by_layer else updated[: len(hops)]
        if self.config.layer_by_layer:
            first_weights.reverse()
        return vectors, first_weights, hop0

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of (user, item) pairs: u · v^u, Eq. (23)  [B]."""
        p = self.propagate(users, items)
        return (p.user * p.item).sum(-1)

    # every user against every item --------------------------------------------------------
    @torch.no_grad()
    def score_grid(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of every user against every item [U, I], in chunks of users.

        The first iteration aggregates raw embeddings, and Eq. (15)-(16) are linear in the
        attention weights, so everything of it but the weights is computed once per item
        (``_first_parts``); a chunk of users then pays only the attention logits and the
        weighted sums. Deeper iterations depend on the user throughout and run per pair."""
        cfg = self.config
        entities, relations = self._field(items)  # hop k: [I, m_k]
        vectors = [self.entity(e) for e in entities]  # [I, m_k, d]
        rel_vectors = [self.relation(r) for r in relations]  # [I, m_(k+1), d]
        parts = {k: self._first_parts(vectors[k], vectors[k + 1], rel_vectors[k]) for k in self._updated_hops(0)}
        if cfg.hops == 1:  # per user: a few [I, n] attention maps and [I, d] vectors
            per_user, budget = 4 * items.numel() * (3 * cfg.n_neighbours + 2 * cfg.dim), GRID_CACHE_BYTES
        else:  # per user: every node of every item's receptive field, a few times over
            per_user, budget = 4 * items.numel() * cfg.dim * sum(v.shape[1] for v in vectors[:-1]) * 8, GRID_BYTES
        chunk = max(1, budget // per_user)
        return torch.cat([self._grid_chunk(users[s : s + chunk], vectors, rel_vectors, parts)
                          for s in range(0, users.numel(), chunk)])

    def _first_parts(self, center: torch.Tensor, children: torch.Tensor, relations: torch.Tensor) -> _FirstParts:
        """The user-free tensors of iteration 1 at one hop: center [I, m, d], children and
        relations [I, m f, d]."""
        cfg = self.config
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
            a_center = torch.softmax((center.unsqueeze(-2) * keys).sum(-1) * self.scale, -1)  # Eq. (20)  [I, m, f]
            a_center = a_center.reshape(items * m, f)  # [I m, f]
        base, part = self.layers[0].linear_parts(center, neighbours)  # [I, m, d], [I, m, f, d]
        if cfg.neighbour_vector == "mean":
            part = part / f
        keys_t = keys.reshape(-1, d).T.contiguous() if keys is not None else None  # [d, I m f]
        return _FirstParts(base.reshape(items * m, d), part.reshape(items * m, f, d), keys_t, a_center)

    def _first_iteration(self, user: torch.Tensor, parts: _FirstParts) -> torch.Tensor:
        """Iteration 1's output for every user and node: user [U, d] -> [U, I m, d]."""
        cfg = self.config
        nodes, f, _ = parts.part.shape
        if cfg.attention == "uniform":
            x = parts.base + parts.part.sum(1) / f  # w/o att.  [I m, d]
            return self.layers[0].activate_(x).unsqueeze(0).expand(user.shape[0], -1, -1)  # [U, I m, d]
        logits = (user @ parts.keys_t).view(-1, nodes, f) * self.scale  # Eq. (18)  [U, I m, f]
        weights = _softmax_last(logits)  # [U, I m, f]
        if cfg.attention == "dual":
            weights = torch.lerp(parts.a_center.unsqueeze(0), weights, cfg.theta)  # Eq. (21)
        x = torch.bmm(weights.transpose(0, 1), parts.part).transpose(0, 1) + parts.base  # Eq. (15-16)  [U, I m, d]
        return self.layers[0].activate_(x)

    def _grid_chunk(self, users: torch.Tensor, vectors: list[torch.Tensor], rel_vectors: list[torch.Tensor],
                    parts: dict[int, _FirstParts]) -> torch.Tensor:
        """Logits of a chunk of users against every item: [U, I]."""
        user = self.user(users)  # [U, d]
        n_users, (items, _, d) = user.shape[0], vectors[0].shape
        if self.config.hops == 1:
            item = self._first_iteration(user, parts[0])  # [U, I, d]
            return torch.bmm(item, user.unsqueeze(-1)).squeeze(-1)  # Eq. (23)  [U, I]

        def per_pair(v: torch.Tensor) -> torch.Tensor:  # [I, m, d] -> [U I, m, d]
            return v.unsqueeze(0).expand(n_users, -1, -1, -1).reshape(n_users * items, -1, d)

        # Iterations 2..h read hops 0..h-1 and their relations; hop h was consumed by iteration 1.
        h = self.config.hops
        state = [per_pair(v) if k < h and k not in parts else v for k, v in enumerate(vectors)]
        for k, p in parts.items():
            state[k] = self._first_iteration(user, p).reshape(n_users * items, -1, d)  # [U I, m_k, d]
        if not self.config.layer_by_layer:
            state = state[: len(parts)]
        rel_state = [per_pair(r) for r in rel_vectors[: h - 1]]  # [U I, m_(k+1), d]
        pair_user = user.repeat_interleave(items, dim=0)  # [U I, d]
        state, _, _ = self._iterate(pair_user, state, rel_state, first=1)
        item = state[0].view(n_users, items, d)  # v^u  [U, I, d]
        return torch.bmm(item, user.unsqueeze(-1)).squeeze(-1)  # Eq. (23)  [U, I]


@dataclass
class _FirstParts:
    """The user-free tensors of iteration 1 over N = I m nodes with f children each."""

    base: torch.Tensor  # W1 c + b  [N, d]
    part: torch.Tensor  # per-child pre-activation terms  [N, f, d]
    keys_t: torch.Tensor | None  # what users attend over, transposed  [d, N f]
    a_center: torch.Tensor | None  # neighbourhood attention α^c  [N, f]


def _softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Softmax over a short last dim, in place; faster than torch.softmax there on CPU."""
    x = (x - x.amax(-1, keepdim=True)).exp_()
    return x.div_(x.sum(-1, keepdim=True))


class MF(nn.Module):
    """Matrix factorisation baseline: ŷ = σ(u · v)."""

    def __init__(self, *, n_users: int, n_items: int, dim: int):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.entity = nn.Embedding(n_items, dim)
        nn.init.xavier_uniform_(self.user.weight)
        nn.init.xavier_uniform_(self.entity.weight)
        self.layers = nn.ModuleList()

    def propagate(self, users: torch.Tensor, items: torch.Tensor) -> Propagation:
        user, item = self.user(users), self.entity(items)  # [B, d], [B, d]
        empty = user.new_zeros(users.shape[0], 1, 1)
        return Propagation(user, item, [items.view(-1, 1)], [], empty, [user, item])

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user(users) * self.entity(items)).sum(-1)  # [B]

    @torch.no_grad()
    def score_grid(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.entity(items).T  # [U, I]
