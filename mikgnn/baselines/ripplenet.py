"""RippleNet: Wang et al., "RippleNet: Propagating User Preferences on the Knowledge Graph for
Recommender Systems", CIKM 2018.

A user's ripple sets S_u^k (``triple_sets.grow`` from the user's training positives, m
triples per hop) carry its preference outwards; for a candidate item v:

    p_i = softmax_i(v^T R_i h_i)                         Eq. (4), over the m triples of hop k
    o_u^k = Σ_i p_i t_i                                  Eq. (5)
    v ← (v + o_u^k) T                                    its code's "plus_transform" item update
    u = Σ_k o_u^k,   ŷ = σ(u^T v)                        Eq. (6-8), every hop's response

Loss (Eq. 10): BCE + the KGE term -λ2 mean σ(h^T R t) over the batch users' ripple triples
(``TrainOutput.extra``, weight ``kg_weight``) + L2 (the run's λ). R: a d x d matrix per relation.

Shapes: B batch, h hops, m memory (triples per hop), d dim, I items.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mikgnn.baselines.triple_sets import TripleSets, grow, seeds_by_object
from mikgnn.config import ModelConfig
from mikgnn.models.base import Recommender, TrainOutput
from mikgnn.processed import ProcessedDataset

USER_CHUNK = 32  # users scored at once by score_all: [32, I, m] attention logits


class RippleNet(Recommender):
    def __init__(self, *, n_items: int, n_entities: int, n_relations: int, dim: int, ripples: TripleSets,
                 kg_weight: float):
        super().__init__()
        self.n_items, self.kg_weight = n_items, kg_weight
        self.entity = nn.Embedding(n_entities, dim)
        self.relation = nn.Parameter(torch.empty(n_relations, dim, dim))  # R  [R, d, d]
        self.transform = nn.Linear(dim, dim, bias=False)  # T of the item update
        for name in ("head", "relation", "tail"):
            self.register_buffer(f"ripple_{name}", getattr(ripples, name), persistent=False)  # [U, h, m]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.entity.weight)
        nn.init.xavier_uniform_(self.relation)
        nn.init.xavier_uniform_(self.transform.weight)

    def memories(self, users: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """R h, t, h [B, h, m, d] and the relation ids [B, h, m] of the users' ripple sets."""
        h = self.entity(self.ripple_head[users])  # [B, h, m, d]
        t = self.entity(self.ripple_tail[users])  # [B, h, m, d]
        relations = self.ripple_relation[users]  # [B, h, m]
        return self.project(h, relations), t, h, relations

    def project(self, x: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """R_r x of every vector x [..., d] by its own relation r [...]: the vectors grouped by
        relation, one matrix product per relation (a [..., d, d] gather of R costs d times the
        memory and runs as one tiny product per triple)."""
        flat, ids = x.reshape(-1, x.shape[-1]), relations.reshape(-1)  # [N, d], [N]
        order = torch.argsort(ids)
        counts = torch.bincount(ids, minlength=self.relation.shape[0]).tolist()
        parts = torch.split(flat[order], counts)
        projected = torch.cat([part @ self.relation[r].T for r, part in enumerate(parts)])  # [N, d], sorted
        return torch.empty_like(projected).index_copy(0, order, projected).reshape(x.shape)

    def respond(self, v: torch.Tensor, rh: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """u^T v of Eq. (4-8) for items v [B, n, d] and memories [B, h, m, d] -> logits [B, n]."""
        user = torch.zeros_like(v)  # [B, n, d]
        for k in range(rh.shape[1]):
            p = torch.softmax(torch.einsum("bnd,bmd->bnm", v, rh[:, k]), dim=-1)  # Eq. (4)  [B, n, m]
            o = torch.einsum("bnm,bmd->bnd", p, t[:, k])  # Eq. (5)  [B, n, d]
            v = self.transform(v + o)  # [B, n, d]
            user = user + o
        return (user * v).sum(-1)  # [B, n]

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        rh, t, h, relations = self.memories(users)
        v = self.entity(items)  # [B, d]
        logits = self.respond(v.unsqueeze(1), rh, t).squeeze(1)  # [B]
        kge = -torch.sigmoid((h * self.project(t, relations)).sum(-1)).mean()  # -σ(h^T R t)  over [B, h, m]
        return TrainOutput(logits, [v, h, t], extra=self.kg_weight * kge)

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        items = self.all_items() if items is None else items
        v = self.entity(items)  # [I, d]
        out = []
        for start in range(0, users.numel(), USER_CHUNK):
            block = users[start : start + USER_CHUNK]
            rh, t, _, _ = self.memories(block)
            out.append(self.respond(v.expand(block.numel(), -1, -1), rh, t))  # [b, I]
        return torch.cat(out) if out else v.new_zeros(0, items.numel())

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.entity.weight, self.transform.weight] + ([self.relation] if relations else [])

    def dense_weights(self) -> list[torch.Tensor]:
        return [self.transform.weight]


def user_seeds(data: ProcessedDataset) -> list[np.ndarray]:
    """Each user's training positives (item i is entity i)."""
    train = data.splits["train"]
    positive = train["label"] == 1
    return seeds_by_object(train["user"][positive], train["item"][positive], data.n_users)


def build_ripplenet(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> RippleNet:
    kg = data.kg
    ripples = grow(user_seeds(data), kg["head"], kg["relation"], kg["tail"], data.n_entities, cfg.hops,
                   cfg.memory, seed)
    return RippleNet(n_items=data.n_items, n_entities=data.n_entities, n_relations=data.n_relations + 1,
                     dim=cfg.dim, ripples=ripples, kg_weight=cfg.kg_weight)
