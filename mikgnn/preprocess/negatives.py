"""Fixed negatives (SPEC §2.2): per user, as many as their positives, from items never rated.

Draws come from a counter-based hash of (seed, user, slot, attempt), so a user's negatives do
not depend on how users are partitioned across workers: the same seed gives the same rows on
a laptop and on a cluster.
"""

from __future__ import annotations

import numpy as np

_MAX_ROUNDS = 16


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, user: np.ndarray, slot: np.ndarray, attempt: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed) ^ _mix(user.astype(np.uint64)))
        return _mix(h ^ ((slot.astype(np.uint64) << np.uint64(24)) | np.uint64(attempt)))


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    if sorted_values.size == 0:
        return np.zeros(values.shape, dtype=bool)
    idx = np.minimum(np.searchsorted(sorted_values, values), sorted_values.size - 1)
    return sorted_values[idx] == values


def sample_negatives(
    user: np.ndarray, item: np.ndarray, positive: np.ndarray, n_items: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Negatives for every user present: (users [N], items [N]), sorted by (user, item).

    ``user``/``item`` hold every rated row of these users (positive or not): all of a user's
    rows must be present, since rated items are excluded. A user with fewer unrated items than
    positives gets every unrated item.
    """
    rated = np.unique(user * n_items + item)
    users, rated_count = np.unique(user, return_counts=True)
    pos_users, pos_count = np.unique(user[positive], return_counts=True)
    available = n_items - rated_count[np.searchsorted(users, pos_users)]
    need = np.minimum(pos_count, available)
    slot_user = np.repeat(pos_users, need)
    starts = np.cumsum(need) - need
    slot = np.arange(slot_user.size) - np.repeat(starts, need)
    result = np.full(slot_user.size, -1, dtype=np.int64)
    accepted = np.empty(0, dtype=np.int64)
    pending = np.arange(slot_user.size)
    for attempt in range(_MAX_ROUNDS):
        if pending.size == 0:
            break
        cand = (_hash(seed, slot_user[pending], slot[pending], attempt) % np.uint64(n_items))
        cand = cand.astype(np.int64)
        keys = slot_user[pending] * n_items + cand
        ok = np.flatnonzero(~_in_sorted(keys, rated) & ~_in_sorted(keys, accepted))
        _, first = np.unique(keys[ok], return_index=True)
        take = ok[first]
        result[pending[take]] = cand[take]
        accepted = np.sort(np.concatenate([accepted, keys[take]]))
        done = np.zeros(pending.size, dtype=bool)
        done[take] = True
        pending = pending[~done]
    for u in np.unique(slot_user[pending]):
        _fill_exhaustively(int(u), pending[slot_user[pending] == u], result, rated, accepted,
                           n_items, seed)
    order = np.lexsort((result, slot_user))
    return slot_user[order], result[order]


def _fill_exhaustively(u: int, slots: np.ndarray, result: np.ndarray, rated: np.ndarray,
                       accepted: np.ndarray, n_items: int, seed: int) -> None:
    """For a user who rated most items: rank the free items by hash and take the first ones."""
    all_items = np.arange(n_items, dtype=np.int64)
    keys = u * n_items + all_items
    free = all_items[~_in_sorted(keys, rated) & ~_in_sorted(keys, accepted)]
    rank = np.argsort(_hash(seed, np.full(free.size, u), free, _MAX_ROUNDS), kind="stable")
    result[slots] = free[rank[: slots.size]]
