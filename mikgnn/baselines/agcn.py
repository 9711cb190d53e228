"""AGCN: Wu et al., "Joint Item Recommendation and Attribute Inference: An Adaptive Graph
Convolutional Network Approach", SIGIR 2020.

**How the graph is built here**: the KG's entities linked directly to an item (by any
relation, either direction) are that item's attributes, a multi-hot x_i over the A most
frequent such entities (``attributes``, default 4096; rarer ones are left out). Items with
no attribute are the "missing" ones whose attributes AGCN infers.

    e_i^(0) = q_i + x_i Y / |x_i|,  e_u^(0) = p_u          item free vector + its attributes' mean
    E^(l+1) = LeakyReLU((S + I) E^(l) W^(l))               S: D^(-1/2) A D^(-1/2) of the user-item graph
    ŷ_ui = e_u* · e_i*,  e* = E^(0) ‖ ... ‖ E^(L)
    x̂_i = σ(e_i* W_a + b_a)                               attribute inference

trained with BPR plus ``kg_weight`` x the BCE of x̂ against x over the batch's items that
have attributes (``TrainOutput.extra``). The adaptive update: a missing item's x_i is its
latest inferred x̂_i (no gradient), refreshed at every training step, so the graph
convolution and the attribute inference feed each other as in the paper's alternation.
The layer form and the concatenation are our reading of the paper, not checked against its
code (none is public that we know of).

Shapes: U users, I items, A attributes, d dim, L layers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mikgnn.baselines.lightgcn import normalized_adjacency
from mikgnn.config import ModelConfig
from mikgnn.models.base import PropagatedRecommender, TrainOutput
from mikgnn.processed import ProcessedDataset


class AGCN(PropagatedRecommender):
    def __init__(self, *, n_users: int, n_items: int, dim: int, layers: int, adjacency: torch.Tensor,
                 attributes: torch.Tensor, kg_weight: float):
        super().__init__()
        self.n_users, self.n_items, self.kg_weight = n_users, n_items, kg_weight
        self.user = nn.Embedding(n_users, dim)  # p_u
        self.item = nn.Embedding(n_items, dim)  # q_i
        self.attribute = nn.Embedding(attributes.shape[1], dim)  # Y  [A, d]
        self.weights = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(layers))  # W^(l)
        self.infer = nn.Linear((layers + 1) * dim, attributes.shape[1])  # W_a, b_a
        self.register_buffer("adjacency", adjacency, persistent=False)  # S  [U + I, U + I], sparse
        self.register_buffer("attributes", attributes, persistent=False)  # x  [I, A]: known; missing rows 0
        known = attributes.sum(-1) > 0
        self.register_buffer("known", known, persistent=False)  # [I]
        self.register_buffer("inferred", torch.zeros_like(attributes), persistent=False)  # x̂ of missing items
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w in (self.user.weight, self.item.weight, self.attribute.weight, *(m.weight for m in self.weights)):
            nn.init.xavier_uniform_(w)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """e* of every user [U, (L + 1) d] and item [I, (L + 1) d]."""
        x = torch.where(self.known[:, None], self.attributes, self.inferred)  # [I, A]
        items = self.item.weight + (x @ self.attribute.weight) / x.sum(-1, keepdim=True).clamp(min=1e-6)
        e = torch.cat([self.user.weight, items])  # E^(0)  [U + I, d]
        outputs = [e]
        for w in self.weights:
            e = F.leaky_relu(w(torch.sparse.mm(self.adjacency, e) + e))  # [U + I, d]
            outputs.append(e)
        final = torch.cat(outputs, -1)
        return final[: self.n_users], final[self.n_users :]

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        user, item = self.propagate()
        logits = (user[users] * item[items]).sum(-1)  # [B]
        extra = None
        if self.training:
            predicted = self.infer(item[items])  # logits of x̂  [B, A]
            known = self.known[items]  # [B]
            bce = F.binary_cross_entropy_with_logits(predicted[known], self.attributes[items][known]) \
                if bool(known.any()) else predicted.sum() * 0
            extra = self.kg_weight * bce
            with torch.no_grad():  # the adaptive update of the missing items' attributes
                missing = ~self.known
                self.inferred[missing] = torch.sigmoid(self.infer(item[missing]))
        return TrainOutput(logits, [self.user(users), self.item(items)], extra=extra)

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.user.weight, self.item.weight, self.attribute.weight, *self.dense_weights()]

    def dense_weights(self) -> list[torch.Tensor]:
        return [*(m.weight for m in self.weights), self.infer.weight]


def item_attributes(data: ProcessedDataset, limit: int) -> torch.Tensor:
    """x [I, A]: the ``limit`` most frequent KG entities linked directly to items."""
    kg, n = data.kg, data.n_items
    ends = np.concatenate([np.stack([kg["head"], kg["tail"]], 1), np.stack([kg["tail"], kg["head"]], 1)])
    ends = np.unique(ends[(ends[:, 0] < n) & (ends[:, 1] >= n)], axis=0)  # (item, attribute entity)
    values, counts = np.unique(ends[:, 1], return_counts=True)
    kept = values[np.argsort(-counts, kind="stable")[:limit]]
    column = {int(e): k for k, e in enumerate(np.sort(kept))}
    x = torch.zeros(n, max(len(column), 1))
    rows = [(int(i), column[int(a)]) for i, a in ends if int(a) in column]
    if rows:
        index = torch.tensor(rows).T
        x[index[0], index[1]] = 1.0
    return x


def build_agcn(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> AGCN:
    train = data.splits["train"]
    positive = train["label"] == 1
    adjacency = normalized_adjacency(train["user"][positive], train["item"][positive], data.n_users, data.n_items)
    return AGCN(n_users=data.n_users, n_items=data.n_items, dim=cfg.dim, layers=cfg.hops, adjacency=adjacency,
                attributes=item_attributes(data, cfg.attributes), kg_weight=cfg.kg_weight)
