"""SVD: biased matrix factorisation, Koren, "Factorization Meets the Neighborhood: a Multifaceted
Collaborative Filtering Model", KDD 2008 (Eq. 1; also Koren, Bell and Volinsky, IEEE Computer
2009, Eq. 4):

    ŷ_ui = σ(μ + b_u + b_i + p_u · q_i)

trained here on implicit feedback (the run's loss, BCE on SPEC §2's fixed negatives by default)
instead of squared error on ratings. Without the biases it is MF (``mikgnn.models.mf``).

Shapes: users, items [B] -> logits [B]; score_all(users [U], items [I]) -> [U, I].
"""

from __future__ import annotations

import torch
from torch import nn

from mikgnn.config import ModelConfig
from mikgnn.models.base import Recommender, TrainOutput
from mikgnn.processed import ProcessedDataset


class SVD(Recommender):
    def __init__(self, *, n_users: int, n_items: int, dim: int):
        super().__init__()
        self.n_items = n_items
        self.user = nn.Embedding(n_users, dim)  # p_u
        self.item = nn.Embedding(n_items, dim)  # q_i
        self.user_bias = nn.Embedding(n_users, 1)  # b_u
        self.item_bias = nn.Embedding(n_items, 1)  # b_i
        self.bias = nn.Parameter(torch.zeros(()))  # μ
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user.weight)
        nn.init.xavier_uniform_(self.item.weight)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        user, item = self.user(users), self.item(items)  # [B, d], [B, d]
        biases = self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)  # [B]
        return TrainOutput(self.bias + biases + (user * item).sum(-1), [user, item])

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        items = self.all_items() if items is None else items
        grid = self.user(users) @ self.item(items).T  # [U, I]
        return grid + self.user_bias(users) + self.item_bias(items).T + self.bias  # [U, I]

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.user.weight, self.item.weight]


def build_svd(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> SVD:
    return SVD(n_users=data.n_users, n_items=data.n_items, dim=cfg.dim)
