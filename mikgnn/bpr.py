"""BPR (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009).

The loss of the baselines whose papers train pairwise (LightGCN, KGAT, KGIN, CKE):

    L = -mean ln σ(ŷ_ui - ŷ_uj)        (u, i) a training positive, j a sampled item u has no
                                       positive training row for

Negatives are drawn afresh every step, uniformly over the items, and redrawn where they hit
one of the user's training positives (a few rounds; a user who has nearly every item may keep
a positive, which only weakens that pair). SPEC §2's fixed negatives stay what the CTR metrics
are measured on; BPR only changes what is trained on (``TrainConfig.loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REDRAWS = 8


class NegativeSampler(nn.Module):
    """Samples, for each user of a batch, an item that is not one of its training positives."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor, n_items: int, seed: int):
        super().__init__()
        positive = labels == 1
        keys = torch.unique(users[positive].long() * n_items + items[positive].long())  # sorted
        self.n_items = n_items
        self.register_buffer("keys", keys, persistent=False)  # [P]
        self.generator = torch.Generator().manual_seed(seed)

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        query = users.long() * self.n_items + items  # [B]
        index = torch.searchsorted(self.keys, query).clamp(max=self.keys.numel() - 1)  # [B]
        return self.keys[index] == query

    def sample(self, users: torch.Tensor) -> torch.Tensor:
        """One negative item per user [B]."""
        draw = torch.randint(self.n_items, users.shape, generator=self.generator).to(users.device)  # [B]
        for _ in range(REDRAWS):
            hit = self.is_positive(users, draw)  # [B]
            if not bool(hit.any()):
                break
            again = torch.randint(self.n_items, users.shape, generator=self.generator).to(users.device)
            draw = torch.where(hit, again, draw)
        return draw


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """-mean ln σ(ŷ_ui - ŷ_uj) over pairs [B]."""
    return -F.logsigmoid(positive - negative).mean()
