"""Top-K recommendations of a trained model, in the dataset's original ids.

A KGCN-style model conditions the item on the user, so there is no item index to search: the
top K of a user is the top K of its row of ``score_all``. ``Recommendations.block`` scores one
block of users (memory: block x items scores) and returns rows (user, rank, item, score), the
items each user has as a training positive excluded unless ``keep_seen``. ``--explain``
(MI-KGNN and its variants): the item's own KG neighbours (relation, entity) that the model
weighted most for that user, by the attention w_j of Eq. (21) (the weights of its first
iteration, which at h = 1, the paper's setting, is the last).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mikgnn.model_store import Trained
from mikgnn.models import MIKGNN

REASONS = 3  # neighbours named per recommended item


@dataclass
class UserRequest:
    """Requested original user ids split into the known ones (their indices) and the unknown."""

    indices: np.ndarray  # [n] int64
    unknown: list[str]


def resolve_users(requested: list[str] | None, user_ids: np.ndarray) -> UserRequest:
    """Indices of ``requested`` (original ids, as text; None: every user)."""
    if requested is None:
        return UserRequest(np.arange(len(user_ids), dtype=np.int64), [])
    lookup = {u: k for k, u in enumerate(user_ids)}
    known = [lookup[u] for u in requested if u in lookup]
    return UserRequest(np.asarray(known, dtype=np.int64), [u for u in requested if u not in lookup])


class Recommendations:
    """Scores blocks of users with one loaded model (``model_store.load_trained``)."""

    def __init__(self, trained: Trained, k: int, keep_seen: bool = False, explain: bool = False):
        n_items = trained.model.n_items
        if not 1 <= k <= n_items:
            raise ValueError(f"k = {k}: must lie in [1, {n_items}] (the number of items)")
        if explain and not isinstance(trained.model, MIKGNN):
            raise ValueError(f"--explain reads MI-KGNN's attention; model {trained.model_cfg.model!r} has none")
        self.trained, self.k, self.explain = trained, k, explain
        train = trained.data.splits["train"]
        positive = train["label"] == 1
        seen = np.unique(train["user"][positive] * n_items + train["item"][positive])  # user * I + item, sorted
        self.seen = None if keep_seen else seen

    @torch.no_grad()
    def block(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """Rows (user, rank, item, score[, reason]) of ``users`` (indices), K per user, best first."""
        model, ids = self.trained.model, self.trained.ids
        if not len(users):  # a request of unknown users only: no rows, not an error
            empty = {"user": ids["users"][:0], "rank": np.zeros(0, np.int32), "item": ids["items"][:0],
                     "score": np.zeros(0, np.float32)}
            return empty | ({"reason": np.zeros(0, dtype=object)} if self.explain else {})
        device = model.device
        index = torch.as_tensor(users, dtype=torch.long, device=device)  # [U]
        exclude = None
        if self.seen is not None and users.size:
            n = model.n_items
            lo, hi = np.searchsorted(self.seen, [users.min() * n, (users.max() + 1) * n])
            keys = self.seen[lo:hi]
            keys = torch.from_numpy(keys[np.isin(keys // n, users)])  # the block's users' training items
            exclude = (keys // n, keys % n)
        items, scores = model.recommend(index, self.k, exclude=exclude)  # [U, k] each
        items, scores = items.cpu().numpy(), scores.cpu().numpy()
        rows = {"user": np.repeat(ids["users"][users], self.k),
                "rank": np.tile(np.arange(1, self.k + 1, dtype=np.int32), len(users)),
                "item": ids["items"][items.reshape(-1)],
                "score": scores.reshape(-1).astype(np.float32)}
        if self.explain:
            rows["reason"] = self.reasons(np.repeat(users, self.k), items.reshape(-1))
        return rows

    def reasons(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """For each (user, item): its REASONS most weighted neighbours, 'relation: entity (w)'."""
        model, ids = self.trained.model, self.trained.ids
        device = model.device
        u = torch.as_tensor(users, device=device)
        v = torch.as_tensor(items, device=device)
        weights = model.forward_train(u, v).field.first_weights[0][:, 0]  # w_j of Eq. (21)  [P, n]
        entities = model.adj_entity[v]  # [P, n]
        relations = model.adj_relation[v]  # [P, n]
        names = np.append(ids["relations"], "self")  # the padding self-edge of an isolated entity
        out = []
        for w, e, r in zip(weights.cpu().numpy(), entities.cpu().numpy(), relations.cpu().numpy()):
            merged: dict[tuple[int, int], float] = {}
            for wj, ej, rj in zip(w, e, r):  # neighbours drawn with replacement: one weight per pair
                merged[(int(rj), int(ej))] = merged.get((int(rj), int(ej)), 0.0) + float(wj)
            top = sorted(merged.items(), key=lambda kv: -kv[1])[:REASONS]
            out.append("; ".join(f"{names[rj]}: {ids['entities'][ej]} ({wj:.3f})" for (rj, ej), wj in top))
        return np.asarray(out, dtype=object)
