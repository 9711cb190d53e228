"""Fixed negative sampling: counts, exclusions, uniqueness, determinism across partitions."""

from __future__ import annotations

import numpy as np
import pytest

from mikgnn.preprocess.negatives import sample_negatives
from mikgnn.preprocess.split import split_assignment


def _random_ratings(seed=0, n_users=50, n_items=30):
    rng = np.random.default_rng(seed)
    users, items, pos = [], [], []
    for u in range(n_users):
        k = int(rng.integers(1, n_items - 2))
        chosen = rng.choice(n_items, size=k, replace=False)
        users += [u] * k
        items += list(chosen)
        pos += list(rng.random(k) < 0.6)
    return np.array(users), np.array(items), np.array(pos)


def test_negatives_count_exclusion_and_uniqueness():
    user, item, pos = _random_ratings()
    n_items = 30
    neg_user, neg_item = sample_negatives(user, item, pos, n_items, seed=7)
    rated = set(zip(user.tolist(), item.tolist()))
    assert not {(u, i) for u, i in zip(neg_user.tolist(), neg_item.tolist())} & rated
    assert len(set(zip(neg_user.tolist(), neg_item.tolist()))) == neg_user.size
    for u in np.unique(user):
        wanted = min(pos[user == u].sum(), n_items - (user == u).sum())
        assert (neg_user == u).sum() == wanted
    assert neg_item.min() >= 0 and neg_item.max() < n_items


def test_dense_users_get_every_free_item():
    user = np.array([0] * 9 + [1] * 2)
    item = np.array(list(range(9)) + [0, 1])
    pos = np.ones(11, dtype=bool)
    neg_user, neg_item = sample_negatives(user, item, pos, n_items=10, seed=0)
    assert neg_item[neg_user == 0].tolist() == [9]  # 9 positives, one unrated item
    assert len(neg_item[neg_user == 1]) == 2


def test_partition_independent_and_seeded():
    user, item, pos = _random_ratings(seed=1)
    whole = sample_negatives(user, item, pos, 30, seed=3)
    cut = np.searchsorted(user, 20)
    a = sample_negatives(user[:cut], item[:cut], pos[:cut], 30, seed=3)
    b = sample_negatives(user[cut:], item[cut:], pos[cut:], 30, seed=3)
    np.testing.assert_array_equal(whole[1], np.concatenate([a[1], b[1]]))
    other = sample_negatives(user, item, pos, 30, seed=4)
    assert not np.array_equal(whole[1], other[1])


@pytest.mark.parametrize("n", [1, 5, 10, 42346])
def test_split_is_exact_and_seeded(n):
    s = split_assignment(n, seed=0)
    assert (s == 0).sum() == round(n * 0.6) and (s == 1).sum() == round(n * 0.2)
    np.testing.assert_array_equal(s, split_assignment(n, seed=0))
