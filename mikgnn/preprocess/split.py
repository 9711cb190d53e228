"""The seeded 6:2:2 split of labelled rows (SPEC §2.3)."""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "valid", "test")
RATIOS = (0.6, 0.2, 0.2)


def split_assignment(n_rows: int, seed: int) -> np.ndarray:
    """0/1/2 (train/valid/test) for each row: exactly 60/20/20 % after rounding, seeded."""
    n_train = int(round(n_rows * RATIOS[0]))
    n_valid = int(round(n_rows * RATIOS[1]))
    perm = np.random.default_rng(seed).permutation(n_rows)
    out = np.full(n_rows, 2, dtype=np.int8)
    out[perm[:n_train]] = 0
    out[perm[n_train : n_train + n_valid]] = 1
    return out
