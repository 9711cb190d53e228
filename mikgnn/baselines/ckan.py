"""CKAN: Wang et al., "CKAN: Collaborative Knowledge-aware Attentive Network for Recommender
Systems", SIGIR 2020.

Collaboration propagation (its Eq. 1-2): a user's initial entities are its training
positives; an item's are the items that share a user with it in training (itself when none).
Knowledge propagation (Eq. 3-4) grows l-hop triple sets from them (``triple_sets.grow``; m_u
triples per hop for users, m_v for items). Each layer is a knowledge-aware attentive sum
(Eq. 5-7):

    π(e_h, e_r) = σ(W3 ReLU(W2 ReLU(W1 [e_h ‖ e_r])))     (no biases, as its code)
    e^(l) = Σ_i softmax_i(π(e_h_i, e_r_i)) e_t_i          over the layer's triples

with layer 0 the mean of the user's initial entities, and the item's own embedding. The
representations are aggregated by concatenation (Eq. 9, its code's default),
e_u = [e_u^(0) ‖ ... ‖ e_u^(L)], likewise e_v, and ŷ = σ(e_u · e_v) (Eq. 12) with BCE
(Eq. 13). A user's and an item's vectors do not depend on each other, so the full ranking is
one matrix product.

Shapes: B batch, L layers, m triples per layer, d dim.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from mikgnn.baselines.ripplenet import user_seeds
from mikgnn.baselines.triple_sets import TripleSets, grow, seeds_by_object
from mikgnn.config import ModelConfig
from mikgnn.models.base import Recommender, TrainOutput
from mikgnn.processed import ProcessedDataset


class CKAN(Recommender):
    def __init__(self, *, n_items: int, n_entities: int, n_relations: int, dim: int, user_sets: TripleSets,
                 item_sets: TripleSets):
        super().__init__()
        self.n_items = n_items
        self.entity = nn.Embedding(n_entities, dim)
        self.relation = nn.Embedding(n_relations, dim)
        self.attention = nn.Sequential(nn.Linear(2 * dim, dim, bias=False), nn.ReLU(), nn.Linear(dim, dim, bias=False),
                                       nn.ReLU(), nn.Linear(dim, 1, bias=False), nn.Sigmoid())
        for side, sets in (("user", user_sets), ("item", item_sets)):
            for name in ("head", "relation", "tail"):
                self.register_buffer(f"{side}_{name}", getattr(sets, name), persistent=False)  # [N, L, m]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.entity.weight)
        nn.init.xavier_uniform_(self.relation.weight)
        for layer in self.attention:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)

    def layers(self, side: str, ids: torch.Tensor) -> list[torch.Tensor]:
        """e^(1..L) [B, d] each, Eq. (5-7)."""
        # W1 [e_h ‖ e_r] = W1_h e_h + W1_r e_r, each projected once per distinct head and relation
        w1 = self.attention[0].weight  # [d, 2d]
        dim = self.entity.embedding_dim
        heads, head_row = torch.unique(getattr(self, f"{side}_head")[ids], return_inverse=True)  # [H], [B, L, m]
        relations, relation_row = torch.unique(getattr(self, f"{side}_relation")[ids], return_inverse=True)
        first = (self.entity(heads) @ w1[:, :dim].T)[head_row] \
            + (self.relation(relations) @ w1[:, dim:].T)[relation_row]  # W1 [e_h ‖ e_r]  [B, L, m, d]
        t = self.entity(getattr(self, f"{side}_tail")[ids])  # [B, L, m, d]
        weights = torch.softmax(self.attention[1:](first).squeeze(-1), dim=-1)  # Eq. (5-6)  [B, L, m]
        return list((weights.unsqueeze(-1) * t).sum(2).unbind(1))  # L x [B, d]

    def represent_users(self, users: torch.Tensor) -> torch.Tensor:
        first = self.entity(self.user_head[users][:, 0]).mean(1)  # e_u^(0): initial entities  [B, d]
        return torch.cat([first, *self.layers("user", users)], -1)  # Eq. (9)  [B, (L + 1) d]

    def represent_items(self, items: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.entity(items), *self.layers("item", items)], -1)  # [B, (L + 1) d]

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        # each distinct user and item of the batch is represented once (a batch repeats them)
        embedded = [self.entity(items)]  # the batch's item rows, one per row (batch L2)
        users, user_row = torch.unique(users, return_inverse=True)  # [U_B], [B]
        items, item_row = torch.unique(items, return_inverse=True)  # [I_B], [B]
        logits = (self.represent_users(users)[user_row] * self.represent_items(items)[item_row]).sum(-1)  # Eq. (12)
        return TrainOutput(logits, embedded)

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        items = self.all_items() if items is None else items
        return self.represent_users(users) @ self.represent_items(items).T  # [U, I]

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        weights = [m.weight for m in self.attention if isinstance(m, nn.Linear)]
        return [self.entity.weight, *weights] + ([self.relation.weight] if relations else [])

    def dense_weights(self) -> list[torch.Tensor]:
        return [m.weight for m in self.attention if isinstance(m, nn.Linear)]


def item_seeds(data: ProcessedDataset) -> list[np.ndarray]:
    """Each item's collaborative neighbours: the items that share a training user with it
    (the non-zeros of RᵀR, R the [U, I] matrix of training positives)."""
    train = data.splits["train"]
    positive = train["label"] == 1
    index = torch.from_numpy(np.stack([train["user"][positive], train["item"][positive]])).long()
    r = torch.sparse_coo_tensor(index, torch.ones(index.shape[1]), (data.n_users, data.n_items),
                                check_invariants=True).coalesce()
    with warnings.catch_warnings():  # torch's note that its sparse-sparse product runs through beta CSR code
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        shared = torch.sparse.mm(r.t().coalesce(), r).coalesce().indices().numpy()  # [2, nnz]
    seeds = seeds_by_object(shared[0], shared[1], data.n_items)
    return [s if s.size else np.array([i]) for i, s in enumerate(seeds)]


def build_ckan(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> CKAN:
    kg = data.kg
    grown = {side: grow(seeds, kg["head"], kg["relation"], kg["tail"], data.n_entities, cfg.hops, size, seed + k)
             for k, (side, seeds, size) in enumerate((("user", user_seeds(data), cfg.memory),
                                                      ("item", item_seeds(data), cfg.item_memory)))}
    return CKAN(n_items=data.n_items, n_entities=data.n_entities, n_relations=data.n_relations + 1, dim=cfg.dim,
                user_sets=grown["user"], item_sets=grown["item"])
