"""Matrix factorisation: ŷ = σ(u · v), the baseline without a knowledge graph."""

from __future__ import annotations

import torch
from torch import nn

from mikgnn.models.base import Recommender, TrainOutput


class MF(Recommender):
    """Shapes: users, items [B] -> logits [B]; score_all(users [U]) -> [U, I]."""

    def __init__(self, *, n_users: int, n_items: int, dim: int):
        super().__init__()
        self.n_items = n_items
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.user.weight)
        nn.init.xavier_uniform_(self.item.weight)

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        user, item = self.user(users), self.item(items)  # [B, d], [B, d]
        return TrainOutput((user * item).sum(-1), [user, item])

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        items = self.all_items() if items is None else items
        return self.user(users) @ self.item(items).T  # [U, I]

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.user.weight, self.item.weight]
