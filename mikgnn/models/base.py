"""The one contract every recommender implements, ours and the baselines.

    forward(users [B], items [B])      -> logits [B]          ŷ = σ(logit)
    forward_train(users, items)        -> TrainOutput        logits plus what the loss needs
    score_all(users [U], items=None)   -> logits [U, I]      every item (or ``items``)
    recommend(users [U], k, exclude)   -> (items [U, k], logits [U, k])
    l2_tensors(relations)              -> the tensors the full-table L2 penalises
    dense_weights()                    -> those of them that are not embedding tables
    transform_penalty()                -> ‖W1 + W2‖² of Eq. (24), or None
    diagnostics(users, items)          -> {name: float}, what a run logs about the model
    auxiliary_loss(batch)              -> loss, a model's own extra term, or None
                                          (the KG losses of CKE and KGAT, KGIN's independence)
    end_epoch()                        -> after an epoch's last step (KGAT refreshes its attention)

Training (``mikgnn.training``) and evaluation speak only this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Field:
    """A KG model's receptive field, for label smoothness (``mikgnn.label_smoothness``)."""

    entities: list[torch.Tensor]  # hop k: [B, m_k]
    first_weights: list[torch.Tensor]  # attention of iteration 1 at hop k: [B, m_k, f_k]


@dataclass
class TrainOutput:
    """One forward pass of a training step."""

    logits: torch.Tensor  # [B]
    embedded: list[torch.Tensor]  # looked-up rows of the user and item/entity tables (batch L2)
    embedded_relations: list[torch.Tensor] = field(default_factory=list)  # relation rows (batch L2)
    field: Field | None = None  # None: the model has no receptive field
    extra: torch.Tensor | None = None  # a model's own weighted loss term on this batch (RippleNet's KGE)


PAIRS_PER_CALL = 65_536  # pairs of one evaluation call of a model whose per-pair work is small


class Recommender(nn.Module):
    n_items: int

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.forward_train(users, items).logits

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        raise NotImplementedError

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        raise NotImplementedError

    def dense_weights(self) -> list[torch.Tensor]:
        return []

    def transform_penalty(self) -> torch.Tensor | None:
        return None

    def diagnostics(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, float]:
        return {}

    def auxiliary_loss(self, batch: int) -> torch.Tensor | None:
        """The model's own training term beside the recommendation loss, already weighted;
        ``batch``: the step's number of rows, for a term that samples its own batch (KG triples)."""
        return None

    def pairs_per_call(self) -> int:
        """How many (user, item) pairs one ``forward`` may score without autograd: a model
        whose per-pair work grows (a receptive field of n^h nodes) bounds its memory here."""
        return PAIRS_PER_CALL

    def end_epoch(self) -> None:
        """Called by training after an epoch's last step, before validation: a model whose
        state is refreshed once an epoch (KGAT's attention, as its code) does it here."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def all_items(self) -> torch.Tensor:
        return torch.arange(self.n_items, device=self.device)

    @torch.no_grad()
    def recommend(self, users: torch.Tensor, k: int,
                  exclude: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The top ``k`` items of each user [U, k] and their logits, best first. ``exclude``:
        (user ids, item ids) pairs never recommended (typically the training interactions)."""
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k must lie in [1, {self.n_items}] (the number of items), got {k}")
        scores = self.score_all(users).clone()  # [U, I]
        if exclude is not None:
            ex_users, ex_items = (t.to(scores.device) for t in exclude)
            order = torch.argsort(users)
            sorted_users = users[order]
            pos = torch.searchsorted(sorted_users, ex_users).clamp(max=len(users) - 1)
            hit = sorted_users[pos] == ex_users
            scores[order[pos[hit]], ex_items[hit]] = -torch.inf
        top = torch.topk(scores, k, dim=1)
        return top.indices, top.values


class PropagatedRecommender(Recommender):
    """A model whose every score reads one propagation over the whole graph (LightGCN, KGIN,
    AGCN): ``propagate()`` gives the final vectors of every user [U, d'] and of every item
    (rows 0..I-1 of [≥ I, d']), and a score is their inner product."""

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        user, item = self.propagate()
        items = self.all_items() if items is None else items
        return user[users] @ item[items].T  # [U, I]
