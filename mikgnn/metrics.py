"""CTR metrics (AUC, F1) and top-K metrics (Recall@K, NDCG@K) with a vectorised full ranking.

Top-K (SPEC §4): for each evaluated user with at least one positive row in the split, the
candidates are all items without a training row for that user and the relevant items are the
user's positive items in the split. Protocols: "full" ranks for every such user; "sampled"
for N of them drawn with a seed (KGCN's code: 100).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores sharing their mean rank)."""
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    _, inverse, counts = np.unique(np.asarray(scores)[order], return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based
    ranks = np.empty(labels.size)
    ranks[order] = mean_rank[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def f1_at_half(labels: np.ndarray, probabilities: np.ndarray) -> float:
    predicted = np.asarray(probabilities) >= 0.5
    labels = np.asarray(labels).astype(bool)
    tp = float((predicted & labels).sum())
    denominator = predicted.sum() + labels.sum()
    return 2.0 * tp / denominator if denominator else 0.0


def batch_mean_auc(labels: np.ndarray, scores: np.ndarray, batch_size: int) -> float:
    """KGCN's per-batch AUC averaged over batches (reported as such, never as 'auc')."""
    values = [auc(labels[s : s + batch_size], scores[s : s + batch_size])
              for s in range(0, labels.size, batch_size)]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def ranking_users(split_users: np.ndarray, split_labels: np.ndarray, protocol: str, n_users: int,
                  seed: int) -> np.ndarray:
    """Users evaluated by top-K: every user with a positive row, or a seeded sample of them."""
    users = np.unique(split_users[split_labels == 1])
    if protocol == "sampled" and users.size > n_users:
        users = np.sort(np.random.default_rng(seed).choice(users, size=n_users, replace=False))
    return users


def topk_metrics(score_grid: Callable[[torch.Tensor], torch.Tensor], users: np.ndarray,
                 train_users: np.ndarray, train_items: np.ndarray, relevant_users: np.ndarray,
                 relevant_items: np.ndarray, n_items: int, ks: tuple[int, ...],
                 chunk: int = 512) -> dict[str, float]:
    """Recall@K and NDCG@K averaged over ``users``.

    ``score_grid(users [C]) -> [C, I]`` scores every item; items with a training row are
    excluded; relevant items are (relevant_users, relevant_items) pairs.
    """
    max_k = min(max(ks), n_items)
    sums = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in ks}
    discounts = 1.0 / torch.log2(torch.arange(2, max_k + 2, dtype=torch.float64))  # [K]
    ideal = torch.cumsum(discounts, 0)  # best DCG with r relevant items: ideal[min(r, k) - 1]
    train_order, rel_order = np.argsort(train_users, kind="stable"), np.argsort(relevant_users, kind="stable")
    train_users, train_items = train_users[train_order], train_items[train_order]
    relevant_users, relevant_items = relevant_users[rel_order], relevant_items[rel_order]
    for start in range(0, users.size, chunk):
        block = users[start : start + chunk]
        row_of = {int(u): r for r, u in enumerate(block)}
        scores = score_grid(torch.as_tensor(block)).clone()  # [C, I]
        rows, cols = _pairs_of(block, train_users, train_items, row_of)
        scores[rows, cols] = -math.inf
        relevant = torch.zeros_like(scores, dtype=torch.bool)  # [C, I]
        rows, cols = _pairs_of(block, relevant_users, relevant_items, row_of)
        relevant[rows, cols] = True
        n_relevant = relevant.sum(1).to(torch.float64)  # [C]
        top = scores.topk(max_k, dim=1).indices  # [C, K]
        hits = relevant.gather(1, top).to(torch.float64)  # [C, K]
        hit_counts = hits.cumsum(1)  # [C, K]
        dcg = (hits * discounts).cumsum(1)  # [C, K]
        for k in ks:
            kk = min(k, max_k)
            sums[f"recall@{k}"] += float((hit_counts[:, kk - 1] / n_relevant).sum())
            best = ideal[(n_relevant.clamp(max=kk) - 1).long()]
            sums[f"ndcg@{k}"] += float((dcg[:, kk - 1] / best).sum())
    return {key: value / max(users.size, 1) for key, value in sums.items()}


def _pairs_of(block: np.ndarray, users: np.ndarray, items: np.ndarray,
              row_of: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = np.searchsorted(users, block[0]), np.searchsorted(users, block[-1], side="right")
    u, i = users[lo:hi], items[lo:hi]
    keep = np.isin(u, block)
    rows = np.fromiter((row_of[int(x)] for x in u[keep]), dtype=np.int64, count=int(keep.sum()))
    return torch.from_numpy(rows), torch.from_numpy(i[keep].astype(np.int64))
