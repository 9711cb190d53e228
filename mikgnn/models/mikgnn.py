"""MI-KGNN and the KGCN baselines: one propagation model over the item's KG neighbourhood."""

from __future__ import annotations

import math

import torch
from torch import nn

from mikgnn.config import ModelConfig
from mikgnn.graph import receptive_field, receptive_field_adjusted
from mikgnn.models.aggregators import make_aggregator
from mikgnn.models.base import Field, Recommender, TrainOutput
from mikgnn.models.score_graph import graph_cost, score_graph
from mikgnn.models.score_grid import score_grid, softmax_last

PAIR_BYTES = 256 << 20  # working memory of one evaluation call (``pairs_per_call``)


class MIKGNN(Recommender):
    """"Multi-Interaction Knowledge Graph Neural Network" (shared/paper; SPEC §3).

    For a central node c with neighbours (r_j, e_j) and user u:

        m_j   = φ(r_j ⊙ e_j), φ = softmax over features          Eq. (17), (19); FMK a: φ = id, Eq. (25)
        α^u_j = softmax_j(u · m_j), α^c_j = softmax_j(c · m_j)    Eq. (18), (20)
        w_j   = θ α^u_j + (1 − θ) α^c_j                           Eq. (21), (22)
        c_N   = Σ_j w_j e_j   (or its mean over the n neighbours)  Eq. (15)
        c'    = σ(W1 (c + c_N) + W2 (c ⊙ c_N) + b)               Eq. (16) (``aggregators``)
        ŷ     = σ(u · v^u)                                        Eq. (23)

    h iterations update the receptive field from its outer hop inwards; v^u is hop 0 after
    the last. The variants of Tables 5-7 and KGCN are configurations (``mikgnn.config``):
    attention "uniform" (w/o att.) or "relation" (KGCN: softmax_j(u · r_j)), FMK r
    (``adjusted_field``), FMK l (``layer_by_layer``: iteration i updates hop h-1-i only).

    Shapes: B batch, U users, I items, E entities, n neighbours per entity, h hops, d dim,
    m_k nodes at hop k (n^k, or n under FMK r), f children per node (n, or 1 deeper in FMK r).
        users, items [B] -> logits [B];  adj_entity, adj_relation [E, n];  score_all -> [U, I]
    """

    def __init__(self, *, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 adj_entity: torch.Tensor, adj_relation: torch.Tensor, config: ModelConfig):
        super().__init__()
        self.config, self.n_items = config, n_items
        d, h = config.dim, config.hops
        if adj_entity.shape != adj_relation.shape or adj_entity.shape[1] != config.n_neighbours:
            raise ValueError(f"neighbour tables {tuple(adj_entity.shape)} / {tuple(adj_relation.shape)} do not "
                             f"hold n = {config.n_neighbours} neighbours per entity: draw them with that n")
        self.register_buffer("adj_entity", adj_entity, persistent=False)  # [E, n]
        self.register_buffer("adj_relation", adj_relation, persistent=False)  # [E, n]
        self.user = nn.Embedding(n_users, d)
        self.entity = nn.Embedding(n_entities, d)
        self.relation = nn.Embedding(n_relations, d)
        self._reset_tables()
        self.layers = nn.ModuleList(make_aggregator(config.aggregator, d, i == h - 1, config.transform)
                                    for i in range(h))
        # The variant's decisions, taken once.
        self.scale = config.logit_scale / (d if config.logits == "mean" else 1.0)
        self._field = receptive_field_adjusted if config.adjusted_field else receptive_field
        self.attention = {"uniform": self._uniform, "relation": self._relation, "dual": self._dual}[config.attention]
        self.schedule = [[h - 1 - i] if config.layer_by_layer else list(range(h - i)) for i in range(h)]

    @property
    def n(self) -> int:
        return self.adj_entity.shape[1]

    def reset_parameters(self) -> None:
        self._reset_tables()
        for layer in self.layers:
            layer.reset_parameters()

    def _reset_tables(self) -> None:
        for table in (self.user, self.entity, self.relation):
            if self.config.init_std is None:
                nn.init.xavier_uniform_(table.weight)
            else:
                nn.init.normal_(table.weight, std=self.config.init_std)

    # attention over each node's f children: user [B, d], center [B, m, d],
    # neighbours / relations [B, m, f, d] -> weights [B, m, f]. (B may be several broadcast
    # dims: the score grid passes [U, 1] users against [1, I] item-level nodes.)
    def _uniform(self, user, center, neighbours, relations):
        return neighbours.new_full(neighbours.shape[:-1], 1.0 / neighbours.shape[-2])  # w/o att.

    def _relation(self, user, center, neighbours, relations):
        return torch.softmax((user[..., None, None, :] * relations).sum(-1) * self.scale, dim=-1)  # KGCN

    def _dual(self, user, center, neighbours, relations):
        message = relations * neighbours  # r_j ⊙ e_j  [B, m, f, d]
        if not self.config.pruned:
            message = torch.softmax(message, dim=-1)  # φ, Eq. (17), (19)
        # the logits as products [B, m, f, d] @ [B, (m), d, 1]: no [B, m, f, d] temporaries
        softmax = softmax_last if not torch.is_grad_enabled() else lambda x: torch.softmax(x, dim=-1)
        a_user = softmax(torch.matmul(message, user[..., None, :, None]).squeeze(-1) * self.scale)  # Eq. (18)
        a_center = softmax(torch.matmul(message, center[..., None]).squeeze(-1) * self.scale)  # Eq. (20)
        return torch.lerp(a_center, a_user, self.config.theta)  # Eq. (21): θ a_user + (1 - θ) a_center  [B, m, f]

    def aggregate(self, i: int, user: torch.Tensor, center: torch.Tensor, children: torch.Tensor,
                  relations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Iteration i at one hop: center [B, m, d], children and relations [B, m f, d]."""
        m = center.shape[-2]
        neighbours = children.unflatten(-2, (m, -1))  # [B, m, f, d]
        if neighbours.shape[-2] == 1:  # one child (FMK r, beyond hop 1): weight 1 under any attention
            weights = neighbours.new_ones(neighbours.shape[:-1])
        else:
            weights = self.attention(user, center, neighbours, relations.unflatten(-2, (m, -1)))  # [B, m, f]
        c_n = (weights.unsqueeze(-1) * neighbours).sum(-2)  # Eq. (15)  [B, m, d]
        if self.config.neighbour_vector == "mean":
            c_n = c_n / neighbours.shape[-2]
        return self.layers[i](center, c_n), weights  # [B, m, d], [B, m, f]

    # propagation ------------------------------------------------------------------------
    def field(self, items: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Entity ids per hop [B, m_k] and relation ids per hop [B, m_(k+1)]."""
        return self._field(items, self.adj_entity, self.adj_relation, self.config.hops)

    def iterate(self, user: torch.Tensor, vectors: list[torch.Tensor], rel_vectors: list[torch.Tensor],
                first: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
        """Iterations first..h-1; hop k's vectors [B, m_k, d]. Returns the vectors, each hop's
        first attention weights and the last weights over the item's neighbours [B, 1, f]."""
        layer_by_layer = self.config.layer_by_layer
        first_weights: list[torch.Tensor] = []
        hop0 = None
        for i in range(first, self.config.hops):
            hops = self.schedule[i]
            updated = list(vectors)
            for k in hops:
                updated[k], w = self.aggregate(i, user, vectors[k], vectors[k + 1], rel_vectors[k])
                if i == 0 or layer_by_layer:  # each hop's first update
                    first_weights.append(w)
                if k == 0:
                    hop0 = w
            vectors = updated if layer_by_layer else updated[: len(hops)]
        if layer_by_layer:
            first_weights.reverse()
        return vectors, first_weights, hop0

    def _propagate(self, users: torch.Tensor, items: torch.Tensor):
        entities, relations = self.field(items)
        user = self.user(users)  # [B, d]
        vectors = [self.entity(e) for e in entities]  # hop k: [B, m_k, d]
        rel_vectors = [self.relation(r) for r in relations]  # [B, m_(k+1), d]
        out, first_weights, hop0 = self.iterate(user, vectors, rel_vectors, first=0)
        logits = (user * out[0].squeeze(1)).sum(-1)  # Eq. (23)  [B]
        return logits, user, entities, vectors, rel_vectors, first_weights, hop0

    # the contract ----------------------------------------------------------------------
    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        logits, user, entities, vectors, rel_vectors, first_weights, _ = self._propagate(users, items)
        return TrainOutput(logits, [user, *vectors], rel_vectors, Field(entities, first_weights))

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Per entity (``score_graph``) where that updates fewer nodes than per item's tree
        (``score_grid``): music, n = 8, 100 users, 1 thread: h = 2 0.55 s against 0.74, h = 3 1.2
        against 9.8, h = 4 1.8 (docs/model.md)."""
        items = self.all_items() if items is None else items
        graph, grid = graph_cost(self, items)
        return score_graph(self, users, items) if graph < grid else score_grid(self, users, items)

    def pairs_per_call(self) -> int:
        """About PAIR_BYTES of [pairs, nodes, d] float32 temporaries, a few per node of the field
        (music, n = 8: h = 1 all 65,536, h = 3 about 800, h = 4 about 100 pairs a call)."""
        nodes = sum(n.shape[1] for n in self.field(torch.zeros(1, dtype=torch.long, device=self.device))[0])
        return max(1, min(super().pairs_per_call(), PAIR_BYTES // (8 * 4 * nodes * self.config.dim)))

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        tables = [self.user.weight, self.entity.weight] + ([self.relation.weight] if relations else [])
        return tables + self.dense_weights()

    def dense_weights(self) -> list[torch.Tensor]:
        return [w for layer in self.layers for w in layer.parameters()]

    def transform_penalty(self) -> torch.Tensor | None:
        terms = [t for t in (layer.transform_penalty() for layer in self.layers) if t is not None]
        return torch.stack(terms).sum() if terms else None

    @torch.no_grad()
    def diagnostics(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, float]:
        """Does the attention learn? Normalised entropy and spread of the final weights over
        the item's neighbours (1 and 0: uniform), and the mean norms of the relation, item and
        neighbour embeddings. Neighbours are sampled with replacement, so an item with one KG
        edge has uniform attention; ``_distinct`` counts only items with at least two distinct
        (entity, relation) neighbours, and ``distinct_share`` says how many rows those are."""
        w = self._propagate(users, items)[-1].squeeze(1)  # [B, f]
        f = w.shape[-1]
        entropy = -(w.clamp_min(1e-12).log() * w).sum(-1) / math.log(f) if f > 1 else torch.ones(len(w))
        keys = (self.adj_entity[items] * self.relation.weight.shape[0] + self.adj_relation[items]).sort(-1).values
        distinct = (keys[:, 1:] != keys[:, :-1]).any(-1)  # [B]
        out = {"attention_entropy": float(entropy.mean()),
               "attention_spread": float((w.max(-1).values - w.min(-1).values).mean()),
               "relation_norm": float(self.relation.weight.norm(dim=-1).mean().cpu()),
               "attention_distinct_share": float(distinct.float().mean()),
               "item_norm": float(self.entity(items).norm(dim=-1).mean().cpu()),
               "neighbour_norm": float(self.entity(self.adj_entity[items]).norm(dim=-1).mean().cpu())}
        if bool(distinct.any()):
            out["attention_entropy_distinct"] = float(entropy[distinct].mean())
        return out
