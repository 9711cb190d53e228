"""Knowledge-graph embeddings that the baselines build on.

TransE (Bordes et al., "Translating Embeddings for Modeling Multi-relational Data", NIPS 2013):
a triple (h, r, t) holds when h + r ≈ t; trained on its own by ``train_transe`` with the
margin loss of its Algorithm 1,

    L = Σ [γ + d(h + r, t) - d(h' + r, t')]_+      (h', t'): the triple with its head or its tail
                                                   replaced by a random entity; d the L2 distance

and entity vectors renormalised to unit length before every step. LibFM + TransE reads its
entity vectors as item features.

TransR (Lin et al., "Learning Entity and Relation Embeddings for Knowledge Graph Completion",
AAAI 2015): entities are projected into the relation's space before the translation,
f_r(h, t) = ‖h M_r + r - t M_r‖²; CKE (its Eq. 2-3) and KGAT (its Eq. 1-2) train it with the
pairwise loss -ln σ(f_r(h, t') - f_r(h, t)) on a corrupted tail t' (``TransR.loss``).

Shapes: T triples, B a batch of triples, d entity dim, k relation dim.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TripleSampler:
    """Batches of KG triples (h, r, t) with a corrupted tail t' drawn uniformly from the entities."""

    def __init__(self, head: np.ndarray, relation: np.ndarray, tail: np.ndarray, n_entities: int, seed: int):
        self.head, self.relation, self.tail = (torch.tensor(np.asarray(a), dtype=torch.long)
                                               for a in (head, relation, tail))  # [T]
        self.n_entities = n_entities
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.head.numel()

    def sample(self, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """(h, r, t, t') [B] each, on ``device``."""
        pick = torch.randint(len(self), (batch,), generator=self.generator)  # [B]
        corrupt = torch.randint(self.n_entities, (batch,), generator=self.generator)  # [B]
        return tuple(x.to(device) for x in (self.head[pick], self.relation[pick], self.tail[pick], corrupt))


def train_transe(head: np.ndarray, relation: np.ndarray, tail: np.ndarray, n_entities: int, n_relations: int,
                 dim: int, seed: int, epochs: int = 100, lr: float = 1e-2, margin: float = 1.0,
                 batch: int = 1024) -> torch.Tensor:
    """TransE entity vectors [E, d] of the KG (each triple as given), unit length."""
    generator = torch.Generator().manual_seed(seed)
    bound = 6 / dim**0.5  # its paper's initialisation, uniform(-6/√k, 6/√k)
    entity = nn.Parameter(torch.empty(n_entities, dim).uniform_(-bound, bound, generator=generator))
    rel = nn.Parameter(F.normalize(torch.empty(n_relations, dim).uniform_(-bound, bound, generator=generator), dim=-1))
    optimizer = torch.optim.Adam([entity, rel], lr=lr)
    h, r, t = (torch.tensor(np.asarray(a), dtype=torch.long) for a in (head, relation, tail))  # [T]
    for _ in range(epochs):
        order = torch.randperm(h.numel(), generator=generator)
        for start in range(0, h.numel(), batch):
            idx = order[start : start + batch]
            with torch.no_grad():
                entity.copy_(F.normalize(entity, dim=-1))
            corrupt = torch.randint(n_entities, idx.shape, generator=generator)  # [B]
            tail_side = torch.rand(idx.shape, generator=generator) < 0.5  # [B]: corrupt the tail, else the head
            h_neg = torch.where(tail_side, h[idx], corrupt)
            t_neg = torch.where(tail_side, corrupt, t[idx])
            positive = (entity[h[idx]] + rel[r[idx]] - entity[t[idx]]).norm(dim=-1)  # [B]
            negative = (entity[h_neg] + rel[r[idx]] - entity[t_neg]).norm(dim=-1)  # [B]
            loss = F.relu(margin + positive - negative).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return F.normalize(entity.detach(), dim=-1)


class TransR(nn.Module):
    """Relation vectors r [R, k] and projections M_r [R, d, k]; the entity table is the model's."""

    def __init__(self, n_relations: int, entity_dim: int, relation_dim: int):
        super().__init__()
        self.relation = nn.Embedding(n_relations, relation_dim)
        self.projection = nn.Parameter(torch.empty(n_relations, entity_dim, relation_dim))
        nn.init.xavier_uniform_(self.relation.weight)
        nn.init.xavier_uniform_(self.projection)

    def energy(self, head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """f_r(h, t) = ‖h M_r + r - t M_r‖² for entity vectors [B, d] and relation ids [B] -> [B]."""
        m = self.projection[relation]  # [B, d, k]
        h = torch.bmm(head.unsqueeze(1), m).squeeze(1)  # [B, k]
        t = torch.bmm(tail.unsqueeze(1), m).squeeze(1)  # [B, k]
        return (h + self.relation(relation) - t).pow(2).sum(-1)  # [B]

    def loss(self, head: torch.Tensor, relation: torch.Tensor, tail: torch.Tensor,
             corrupt: torch.Tensor) -> torch.Tensor:
        """-mean ln σ(f_r(h, t') - f_r(h, t)) over a batch of entity vectors [B, d]."""
        return -F.logsigmoid(self.energy(head, relation, corrupt) - self.energy(head, relation, tail)).mean()
