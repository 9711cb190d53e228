"""LightGCN: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020.

Propagation over the user-item graph of the training positives, with no feature
transformation and no non-linearity (Eq. 3), layer combination by the mean (Eq. 4, α_k =
1 / (K + 1)) and the inner product as the score (Eq. 5):

    E^(k+1) = D^(-1/2) A D^(-1/2) E^(k)          A: the symmetric (U + I) x (U + I) adjacency
    e = 1 / (K + 1) Σ_k E^(k)                    e_u, e_i: the rows of user u and item i
    ŷ_ui = e_u · e_i

Its paper trains with BPR and L2 on the layer-0 rows of the batch; here the loss is the
run's (BCE on SPEC §2's fixed negatives by default) and L2 follows ``TrainConfig.l2_mode``.
K = ``ModelConfig.hops`` (its paper: 3). K = 0 is MF (tested).

Shapes: users, items [B] -> logits [B]; score_all(users [U], items [I]) -> [U, I].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mikgnn.config import ModelConfig
from mikgnn.models.base import PropagatedRecommender, TrainOutput
from mikgnn.processed import ProcessedDataset


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """D^(-1/2) A D^(-1/2) of the bipartite graph of (user, item) pairs, as a sparse tensor
    [U + I, U + I]; a node without an edge keeps a zero row."""
    pairs = np.unique(np.stack([users, items], 1), axis=0)  # each interaction once
    rows = np.concatenate([pairs[:, 0], pairs[:, 1] + n_users])
    cols = np.concatenate([pairs[:, 1] + n_users, pairs[:, 0]])
    degree = np.bincount(rows, minlength=n_users + n_items).astype(np.float32)
    scale = np.where(degree > 0, degree, 1.0) ** -0.5
    values = scale[rows] * scale[cols]
    index = torch.from_numpy(np.stack([rows, cols])).long()
    return torch.sparse_coo_tensor(index, torch.from_numpy(values.astype(np.float32)), (n_users + n_items,) * 2,
                                   check_invariants=True).coalesce()


class LightGCN(PropagatedRecommender):
    def __init__(self, *, n_users: int, n_items: int, dim: int, layers: int, adjacency: torch.Tensor):
        super().__init__()
        self.n_users, self.n_items, self.layers = n_users, n_items, layers
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.register_buffer("adjacency", adjacency, persistent=False)  # [U + I, U + I], sparse
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user.weight, std=0.1)  # its code's initialisation
        nn.init.normal_(self.item.weight, std=0.1)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The final embeddings of every user [U, d] and item [I, d] (Eq. 3-4)."""
        layer = torch.cat([self.user.weight, self.item.weight])  # E^(0)  [U + I, d]
        total = layer
        for _ in range(self.layers):
            layer = torch.sparse.mm(self.adjacency, layer)  # E^(k+1)  [U + I, d]
            total = total + layer
        final = total / (self.layers + 1)
        return final[: self.n_users], final[self.n_users :]

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        user, item = self.propagate()
        logits = (user[users] * item[items]).sum(-1)  # Eq. 5  [B]
        return TrainOutput(logits, [self.user(users), self.item(items)])

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.user.weight, self.item.weight]


def build_lightgcn(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> LightGCN:
    train = data.splits["train"]
    positive = train["label"] == 1
    adjacency = normalized_adjacency(train["user"][positive], train["item"][positive], data.n_users, data.n_items)
    return LightGCN(n_users=data.n_users, n_items=data.n_items, dim=cfg.dim, layers=cfg.hops, adjacency=adjacency)
