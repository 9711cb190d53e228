"""LibFM: Rendle, "Factorization Machines", ICDM 2010 (Eq. 1), and LibFM + TransE.

A factorisation machine over the features x of a (user, item) pair:

    ŷ(x) = w0 + Σ_a w_a x_a + Σ_a Σ_{b>a} <v_a, v_b> x_a x_b                       Eq. (1)

computed in O(k n) by its Lemma 3.1, Σ_{a<b} <v_a, v_b> x_a x_b = ½ (‖Σ_a x_a v_a‖² - Σ_a x_a² ‖v_a‖²).

Features: the one-hot user id and item id ("fm", as the paper's LibFM baseline: "trained with
the user ID and the item ID as features"); "fm-transe" adds the item's TransE entity vector
(``kge.train_transe``, trained on the KG before the FM) as k real-valued features. With ids
alone the FM is biased MF (``svd.SVD``; tested). For the full ranking the item side folds into
one vector and one bias per item, so a user's scores are one matrix product:

    ŷ(u, i) = w0 + w_u + c_i + v_u · s_i,   s_i = v_i + x_i V,   c_i = w_i + x_i · w + v_i · (x_i V)
                                                                       + ½ (‖x_i V‖² - Σ_f x_if² ‖V_f‖²)

Shapes: U users, I items, k feature columns, d factors; users, items [B] -> logits [B].
"""

from __future__ import annotations

import torch
from torch import nn

from mikgnn.baselines.kge import train_transe
from mikgnn.baselines.svd import SVD
from mikgnn.config import ModelConfig
from mikgnn.models.base import TrainOutput
from mikgnn.processed import ProcessedDataset


class FM(SVD):
    """SVD's tables are the id features' v (user, item), w (user_bias, item_bias) and w0 (bias)."""

    def __init__(self, *, n_users: int, n_items: int, dim: int, item_features: torch.Tensor | None = None):
        super().__init__(n_users=n_users, n_items=n_items, dim=dim)
        self.feature_factors = self.feature_weights = None  # ids alone: no real-valued features
        if item_features is not None:
            self.register_buffer("features", item_features.float(), persistent=False)  # x_i  [I, k]
            self.feature_factors = nn.Parameter(torch.zeros(item_features.shape[1], dim))  # V  [k, d]
            self.feature_weights = nn.Parameter(torch.zeros(item_features.shape[1]))  # w  [k]
            nn.init.xavier_uniform_(self.feature_factors)  # SVD's __init__ set up the id features

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if getattr(self, "feature_factors", None) is not None:
            nn.init.xavier_uniform_(self.feature_factors)

    def item_side(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s_i [n, d] and c_i [n] of the formula above."""
        v = self.item(items)  # [n, d]
        if self.feature_factors is None:
            return v, self.item_bias(items).squeeze(-1)
        x = self.features[items]  # [n, k]
        xv = x @ self.feature_factors  # [n, d]
        self_pairs = 0.5 * (xv.pow(2).sum(-1) - x.pow(2) @ self.feature_factors.pow(2).sum(-1))  # [n]
        c = self.item_bias(items).squeeze(-1) + x @ self.feature_weights + (v * xv).sum(-1) + self_pairs
        return v + xv, c

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        user = self.user(users)  # [B, d]
        s, c = self.item_side(items)  # [B, d], [B]
        logits = self.bias + self.user_bias(users).squeeze(-1) + c + (user * s).sum(-1)  # Eq. (1)  [B]
        return TrainOutput(logits, [user, self.item(items)])

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        items = self.all_items() if items is None else items
        s, c = self.item_side(items)  # [I, d], [I]
        return self.user(users) @ s.T + c + self.user_bias(users) + self.bias  # [U, I]

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.user.weight, self.item.weight, *self.dense_weights()]

    def dense_weights(self) -> list[torch.Tensor]:
        return [self.feature_factors] if self.feature_factors is not None else []


def build_fm(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> FM:
    features = None
    if cfg.model == "fm-transe":
        kg = data.kg
        entity = train_transe(kg["head"], kg["relation"], kg["tail"], data.n_entities, data.n_relations,
                              dim=cfg.dim, seed=seed)  # [E, d]
        features = entity[: data.n_items]  # item i is entity i (SPEC §2)
    return FM(n_users=data.n_users, n_items=data.n_items, dim=cfg.dim, item_features=features)
