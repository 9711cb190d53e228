"""Metrics against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score, roc_auc_score

from mikgnn.metrics import auc, batch_mean_auc, f1_at_half, ranking_users, topk_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + labels, 1)  # many ties
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_f1_and_batch_auc():
    labels = np.array([1, 1, 0, 0])
    assert f1_at_half(labels, np.array([0.9, 0.2, 0.7, 0.1])) == pytest.approx(0.5)
    assert batch_mean_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.2, 0.8]), 2) == pytest.approx(0.5)


def test_topk_against_hand_computed_and_sklearn():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    grid = lambda users: scores[users]  # noqa: E731
    # user 0: item 0 has a training row (excluded); relevant {2, 5}. user 1: relevant {5}.
    out = topk_metrics(grid, np.array([0, 1]), np.array([0]), np.array([0]),
                       np.array([0, 0, 1]), np.array([2, 5, 5]), n_items=6, ks=(1, 2, 3))
    # user 0 ranking: 1, 2, 3, 4, 5 -> hits at ranks 2 and 5. user 1: 5 first.
    assert out["recall@1"] == pytest.approx((0 + 1) / 2)
    assert out["recall@2"] == pytest.approx((0.5 + 1) / 2)
    assert out["recall@3"] == pytest.approx((0.5 + 1) / 2)
    truth = np.array([[0, 0, 1, 0, 0, 1]])
    masked = scores[:1].clone().numpy()
    masked[0, 0] = -1e9
    expected0 = ndcg_score(truth, masked, k=3)
    assert out["ndcg@3"] == pytest.approx((expected0 + 1.0) / 2)


def test_sampled_protocol_is_seeded_subset():
    users = np.arange(500).repeat(2)
    labels = np.tile([1, 0], 500)
    full = ranking_users(users, labels, "full", 100, seed=0)
    sampled = ranking_users(users, labels, "sampled", 100, seed=0)
    assert full.size == 500 and sampled.size == 100 and np.isin(sampled, full).all()
    np.testing.assert_array_equal(sampled, ranking_users(users, labels, "sampled", 100, seed=0))
