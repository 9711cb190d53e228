"""KGIN: Wang et al., "Learning Intents behind Interactions with Knowledge Graph for
Recommendation", WWW 2021.

Each of P intents is an attentive combination of the relations, and a user's interactions are
read through its intents; items and entities aggregate their KG neighbourhoods relationally:

    e_p = Σ_r α(r, p) e_r,   α(r, p) = softmax_r(w_rp)                          Eq. (1-2)
    β(u, p) = softmax_p(e_p^T e_u)                                              Eq. (7)
    e_u^(l+1) = (Σ_p β(u, p) e_p) ⊙ ē + ē,  ē = 1/|N_u| Σ_(i ∈ N_u) e_i^(l)     Eq. (6); + ē as its code
    e_i^(l+1) = 1/|N_i| Σ_((r, v) ∈ N_i) e_r ⊙ e_v^(l)                          Eq. (8)
    e* = Σ_l e^(l) (every layer L2-normalised, as its code),  ŷ_ui = e*_u · e*_i   Eq. (11-12)

trained with BPR (Eq. 13) plus the independence of the intents: ``kg_weight`` x the summed
distance correlation of every pair of intents' relation weights w_p (Eq. 14, its code's
default). The KG is read in both directions with one relation (SPEC §2.4; its code adds
inverse relations). Message dropout is ``dropout``; its node dropout is left out.

Shapes: U users, E entities, P intents, R relations, d dim, M KG edges.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mikgnn.config import ModelConfig
from mikgnn.graph import undirected_edges
from mikgnn.models.base import PropagatedRecommender, TrainOutput
from mikgnn.processed import ProcessedDataset


def distance_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dCor of two vectors [n] (Székely et al. 2007), read as n samples of one variable each."""
    da = (a[:, None] - a[None, :]).abs()  # [n, n]
    db = (b[:, None] - b[None, :]).abs()
    da = da - da.mean(0, keepdim=True) - da.mean(1, keepdim=True) + da.mean()
    db = db - db.mean(0, keepdim=True) - db.mean(1, keepdim=True) + db.mean()
    cov, var_a, var_b = (da * db).mean(), (da * da).mean(), (db * db).mean()
    return cov.clamp(min=0).sqrt() / ((var_a * var_b).sqrt().sqrt() + 1e-10)


class KGIN(PropagatedRecommender):
    def __init__(self, *, n_users: int, n_items: int, n_entities: int, n_relations: int, dim: int, layers: int,
                 intents: int, dropout: float, kg_edges: tuple[np.ndarray, ...], interactions: torch.Tensor,
                 kg_weight: float):
        super().__init__()
        self.n_users, self.n_items, self.n_entities, self.layers = n_users, n_items, n_entities, layers
        self.kg_weight = kg_weight
        self.user = nn.Embedding(n_users, dim)
        self.entity = nn.Embedding(n_entities, dim)
        self.relation = nn.Embedding(n_relations, dim)  # e_r
        self.intent_weights = nn.Parameter(torch.empty(intents, n_relations))  # w_rp
        self.dropout = nn.Dropout(dropout)
        head, tail, relation = (torch.from_numpy(a).long() for a in kg_edges)
        self.register_buffer("kg_head", head, persistent=False)  # [M]
        self.register_buffer("kg_tail", tail, persistent=False)
        self.register_buffer("kg_relation", relation, persistent=False)
        degree = torch.bincount(head, minlength=n_entities).clamp(min=1).float()
        self.register_buffer("kg_degree", degree, persistent=False)  # [E]
        self.register_buffer("interactions", interactions, persistent=False)  # [U, E] sparse, rows sum to 1
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w in (self.user.weight, self.entity.weight, self.relation.weight, self.intent_weights):
            nn.init.xavier_uniform_(w)

    def intents(self) -> torch.Tensor:
        return torch.softmax(self.intent_weights, dim=-1) @ self.relation.weight  # Eq. (1-2)  [P, d]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """e*_u [U, d] and e*_e [E, d] (Eq. 6-11)."""
        user, entity = self.user.weight, self.entity.weight
        intents = self.intents()  # [P, d]
        user_sum, entity_sum = user, entity
        for _ in range(self.layers):
            messages = entity[self.kg_tail] * self.relation(self.kg_relation)  # [M, d]
            entity_next = torch.zeros_like(entity).index_add_(0, self.kg_head, messages) / self.kg_degree[:, None]
            mean_items = torch.sparse.mm(self.interactions, entity)  # ē  [U, d]
            beta = torch.softmax(user @ intents.T, dim=-1)  # Eq. (7)  [U, P]
            user = mean_items * (beta @ intents) + mean_items  # Eq. (6)  [U, d]
            entity = F.normalize(self.dropout(entity_next), dim=-1)
            user = F.normalize(self.dropout(user), dim=-1)
            user_sum, entity_sum = user_sum + user, entity_sum + entity
        return user_sum, entity_sum

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        user, entity = self.propagate()
        logits = (user[users] * entity[items]).sum(-1)  # Eq. (12)  [B]
        return TrainOutput(logits, [self.user(users), self.entity(items)])

    def auxiliary_loss(self, batch: int) -> torch.Tensor:
        w = torch.softmax(self.intent_weights, dim=-1)  # [P, R]
        pairs = itertools.combinations(range(w.shape[0]), 2)
        loss = sum((distance_correlation(w[p], w[q]) for p, q in pairs), torch.zeros((), device=w.device))
        return self.kg_weight * loss  # Eq. (14)

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.user.weight, self.entity.weight, self.intent_weights] + (
            [self.relation.weight] if relations else [])

    def dense_weights(self) -> list[torch.Tensor]:
        return [self.intent_weights]


def row_normalised_interactions(data: ProcessedDataset) -> torch.Tensor:
    """[U, E] sparse: 1 / |N_u| at (u, i) for every training positive (item i is entity i)."""
    train = data.splits["train"]
    positive = train["label"] == 1
    pairs = np.unique(np.stack([train["user"][positive], train["item"][positive]], 1), axis=0)
    degree = np.bincount(pairs[:, 0], minlength=data.n_users).astype(np.float32)
    values = torch.from_numpy(1.0 / degree[pairs[:, 0]])
    index = torch.from_numpy(pairs.T.copy()).long()
    return torch.sparse_coo_tensor(index, values, (data.n_users, data.n_entities), check_invariants=True).coalesce()


def build_kgin(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> KGIN:
    kg = data.kg
    edges = undirected_edges(kg["head"], kg["relation"], kg["tail"])
    return KGIN(n_users=data.n_users, n_items=data.n_items, n_entities=data.n_entities,
                n_relations=data.n_relations, dim=cfg.dim, layers=cfg.hops, intents=cfg.intents, dropout=cfg.dropout,
                kg_edges=edges, interactions=row_normalised_interactions(data), kg_weight=cfg.kg_weight)
