"""PER: Yu et al., "Personalized Entity Recommendation: A Heterogeneous Information Network
Approach", WSDM 2014 (its global model, Sec. 4).

For each meta-path P_q = user - item - (relation r_q) - attribute - (r_q) - item, user
preferences diffuse along item-item similarities, and the diffused matrix is factorised:

    S^(q)_ij = 2 c_ij / (c_ii + c_jj),  c = B_q B_q^T         PathSim (Sun et al. 2011), B_q: item x attribute
    R̃^(q) = R S^(q)                                           Eq. (3), R: training positives [U, I]
    R̃^(q) ≈ U^(q) V^(q)T  (rank d)                             Eq. (4)
    ŷ_ui = b + Σ_q θ_q U^(q)_u · V^(q)_i                        Eq. (5), θ learnt (Eq. 6's loss: the run's)

**Meta-paths, chosen automatically** (the paper, like MI-KGNN's authors, had no expert ones):
every relation that links items to non-item entities is a candidate; the ``meta_paths``
relations that reach the most items are kept (ties: the lower relation id), and
``PER.paths`` records them. **Factorisation**: a truncated SVD (torch.svd_lowrank, the
factors scaled by √σ) where the paper uses NMF; the diffused matrices are dense [U, I], so
PER suits catalogues of up to some ten thousand items.

Shapes: U users, I items, q meta-paths, d rank.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mikgnn.config import ModelConfig
from mikgnn.models.base import Recommender, TrainOutput
from mikgnn.processed import ProcessedDataset


class PER(Recommender):
    def __init__(self, *, n_items: int, user_factors: torch.Tensor, item_factors: torch.Tensor, paths: list[int]):
        super().__init__()
        self.n_items, self.paths = n_items, paths
        self.register_buffer("user_factors", user_factors, persistent=False)  # U^(q)  [q, U, d]
        self.register_buffer("item_factors", item_factors, persistent=False)  # V^(q)  [q, I, d]
        self.theta = nn.Parameter(torch.ones(len(paths)))  # θ  [q]
        self.bias = nn.Parameter(torch.zeros(()))  # b

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        per_path = (self.user_factors[:, users] * self.item_factors[:, items]).sum(-1)  # [q, B]
        logits = self.bias + self.theta @ per_path  # Eq. (5)  [B]
        return TrainOutput(logits, [self.theta])

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        items = self.all_items() if items is None else items
        user = self.theta[:, None, None] * self.user_factors[:, users]  # [q, U, d]
        return self.bias + torch.einsum("qud,qid->ui", user, self.item_factors[:, items])  # [U, I]

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.theta]


def item_attribute_paths(data: ProcessedDataset, limit: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(relation, items, attributes) of the ``limit`` relations that reach the most items."""
    kg, n = data.kg, data.n_items
    head, relation, tail = kg["head"], kg["relation"], kg["tail"]
    item_side = np.concatenate([head, tail])
    other = np.concatenate([tail, head])
    rel = np.concatenate([relation, relation])
    keep = (item_side < n) & (other >= n)
    item_side, other, rel = item_side[keep], other[keep], rel[keep]
    coverage = [(-np.unique(item_side[rel == r]).size, r) for r in np.unique(rel)]
    chosen = [int(r) for _, r in sorted(coverage)[:limit]]
    return [(r, item_side[rel == r], other[rel == r]) for r in chosen]


def diffused_factors(data: ProcessedDataset, items: np.ndarray, attributes: np.ndarray,
                     rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """U^(q) [U, d] and V^(q) [I, d] of one meta-path (Eq. 3-4)."""
    n_items = data.n_items
    attr_ids, attr_index = np.unique(attributes, return_inverse=True)
    b = torch.zeros(n_items, attr_ids.size)
    b[torch.from_numpy(items).long(), torch.from_numpy(attr_index).long()] = 1.0  # B_q  [I, A]
    counts = b @ b.T  # c  [I, I]
    self_counts = counts.diagonal()
    similarity = 2 * counts / (self_counts[:, None] + self_counts[None, :]).clamp(min=1)  # PathSim
    train = data.splits["train"]
    positive = train["label"] == 1
    r = torch.zeros(data.n_users, n_items)
    r[torch.from_numpy(train["user"][positive]).long(), torch.from_numpy(train["item"][positive]).long()] = 1.0
    diffused = r @ similarity  # R̃  [U, I]
    diffused = diffused / diffused.std().clamp(min=1e-12)  # scores of order 1 for every path
    torch.manual_seed(seed)
    u, s, v = torch.svd_lowrank(diffused, q=min(rank, *diffused.shape))
    scale = s.sqrt()
    return u * scale, v * scale


def build_per(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> PER:
    paths = item_attribute_paths(data, cfg.meta_paths)
    if not paths:
        raise ValueError("PER needs relations that link items to other entities; this KG has none")
    factors = [diffused_factors(data, items, attrs, cfg.dim, seed) for _, items, attrs in paths]
    users = torch.stack([_pad(u, cfg.dim) for u, _ in factors])  # [q, U, d]
    items = torch.stack([_pad(v, cfg.dim) for _, v in factors])  # [q, I, d]
    return PER(n_items=data.n_items, user_factors=users, item_factors=items, paths=[r for r, _, _ in paths])


def _pad(factor: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.nn.functional.pad(factor, (0, dim - factor.shape[1]))
