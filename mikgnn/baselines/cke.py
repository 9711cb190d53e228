"""CKE: Zhang et al., "Collaborative Knowledge Base Embedding for Recommender Systems", KDD 2016.

Of CKE's three knowledge parts, the structural one applies here (the datasets carry no text
or images). An item's latent vector is its collaborative offset plus the TransR embedding of
its entity (its Eq. 5, without the textual and visual terms), and the KG is learnt jointly:

    e_i = η_i + v_i,   ŷ_ui = u_u · e_i                            Eq. (5); v_i: entity i's vector
    f_r(h, t) = ‖h M_r + r - t M_r‖²                                Eq. (2-3), TransR (``kge.TransR``)

Its paper trains the pairwise (BPR-style) ranking loss with the KG loss (``loss: bpr``, the
default of this model); the KG term is ``kg_weight`` x TransR's pairwise loss on a batch of
triples with corrupted tails (``auxiliary_loss``), as many triples as the step has rows.

Shapes: users, items [B] -> logits [B]; score_all(users [U], items [I]) -> [U, I].
"""

from __future__ import annotations

import torch
from torch import nn

from mikgnn.baselines.kge import TransR, TripleSampler
from mikgnn.config import ModelConfig
from mikgnn.models.base import Recommender, TrainOutput
from mikgnn.processed import ProcessedDataset


class CKE(Recommender):
    def __init__(self, *, n_users: int, n_items: int, n_entities: int, n_relations: int, dim: int,
                 triples: TripleSampler, kg_weight: float):
        super().__init__()
        self.n_items, self.kg_weight, self.triples = n_items, kg_weight, triples
        self.user = nn.Embedding(n_users, dim)  # u_u
        self.item = nn.Embedding(n_items, dim)  # η_i
        self.entity = nn.Embedding(n_entities, dim)  # v, TransR's entity vectors
        self.transr = TransR(n_relations, dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.user, self.item, self.entity):
            nn.init.xavier_uniform_(table.weight)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.item(items) + self.entity(items)  # Eq. (5)  [n, d]

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        user = self.user(users)  # [B, d]
        logits = (user * self.item_vectors(items)).sum(-1)  # [B]
        return TrainOutput(logits, [user, self.item(items), self.entity(items)])

    def auxiliary_loss(self, batch: int) -> torch.Tensor:
        h, r, t, corrupt = self.triples.sample(batch, self.device)  # [B] each
        loss = self.transr.loss(self.entity(h), r, self.entity(t), self.entity(corrupt))
        return self.kg_weight * loss

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        items = self.all_items() if items is None else items
        return self.user(users) @ self.item_vectors(items).T  # [U, I]

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.user.weight, self.item.weight, self.entity.weight, self.transr.projection] + (
            [self.transr.relation.weight] if relations else [])

    def dense_weights(self) -> list[torch.Tensor]:
        return [self.transr.projection]


def build_cke(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> CKE:
    kg = data.kg
    triples = TripleSampler(kg["head"], kg["relation"], kg["tail"], data.n_entities, seed)
    return CKE(n_users=data.n_users, n_items=data.n_items, n_entities=data.n_entities, n_relations=data.n_relations,
               dim=cfg.dim, triples=triples, kg_weight=cfg.kg_weight)
