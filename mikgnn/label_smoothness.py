"""Label smoothness regularisation (KGNN-LS; weight β in Table 1).

Every entity of an item's receptive field starts with the user's training label for it
(0.5 when unknown); the item itself is held out (0.5). Labels propagate inwards with the
model's attention weights of its first iteration; the loss is the BCE between the item's
propagated label and its true label. Labelled items deeper in the field keep their label.
**Decision**: the propagated label is the attention-weighted sum over the children (a convex
combination), where KGNN-LS's code takes the mean over n of the weighted labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mikgnn.models.base import Field


class InteractionTable(nn.Module):
    """(user, entity) -> training label, 0.5 when absent."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor, n_entities: int):
        super().__init__()
        keys = users.long() * n_entities + items.long()
        order = torch.argsort(keys)
        self.n_entities = n_entities
        self.register_buffer("keys", keys[order], persistent=False)  # [N]
        self.register_buffer("labels", labels[order].float(), persistent=False)  # [N]

    def lookup(self, users: torch.Tensor, entities: torch.Tensor) -> torch.Tensor:
        query = users.long().view(-1, 1) * self.n_entities + entities  # [B, m]
        index = torch.searchsorted(self.keys, query).clamp(max=self.keys.numel() - 1)  # [B, m]
        found = self.keys[index] == query
        return torch.where(found, self.labels[index], torch.full_like(self.labels[index], 0.5))


def label_smoothness_loss(p: Field, users: torch.Tensor, labels: torch.Tensor,
                          table: InteractionTable) -> torch.Tensor:
    hops = len(p.first_weights)
    item = p.entities[0]  # [B, 1]
    current, keep = [], []
    for k, entities in enumerate(p.entities):
        initial = table.lookup(users, entities)  # [B, m_k]
        not_item = entities != item  # the held-out item is never an anchor
        initial = torch.where(not_item, initial, torch.full_like(initial, 0.5))
        current.append(initial)
        keep.append((initial != 0.5) & not_item if k > 0 else torch.zeros_like(not_item))
    for i in range(hops):
        updated = []
        for k in range(hops - i):
            w = p.first_weights[k]  # [B, m_k, f]
            children = current[k + 1].view(w.shape)  # [B, m_k, f]
            propagated = (w * children).sum(-1)  # [B, m_k]
            updated.append(torch.where(keep[k], current[k], propagated))
        current = updated
    predicted = current[0].squeeze(1).clamp(1e-6, 1 - 1e-6)  # [B]
    return F.binary_cross_entropy(predicted, labels.float())
