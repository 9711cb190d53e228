"""KGAT: Wang et al., "KGAT: Knowledge Graph Attention Network for Recommendation", KDD 2019.

The collaborative knowledge graph (CKG) joins users to the KG: nodes are the entities and the
users; edges are every KG triple in both directions (the inverse with its own relation), and
(user, interact, item) both ways, each direction its own relation. On it, L layers of
attentive embedding propagation:

    π(h, r, t) = (W_r e_t)^T tanh(W_r e_h + e_r)                 Eq. (4), softmax over h's edges (Eq. 5)
    e_N(h) = Σ_(h,r,t) π(h, r, t) e_t                             Eq. (3)
    e_h' = LeakyReLU(W1 (e_h + e_N)) + LeakyReLU(W2 (e_h ⊙ e_N))  Eq. (8), bi-interaction
    e* = e^(0) ‖ e^(1) ‖ ... ‖ e^(L)                               Eq. (11), each layer L2-normalised
    ŷ_ui = e*_u · e*_i                                            Eq. (12)

trained with BPR (Eq. 13) and, jointly, TransR on the KG triples (Eq. 1-2, ``kge.TransR`` on
the same e^(0) and W_r; weight ``kg_weight``; ``auxiliary_loss``). As in its code, the
attention takes no gradient and is recomputed once an epoch, after its last step
(``end_epoch``; its code's ``update_attentive_A``): every step of an epoch and the validation
after it propagate over the same π. The first epoch's π is computed from the initial weights
(its code starts from the plain normalised adjacency instead). Loading weights forgets π.
Message dropout (its code: 0.1) is ``dropout``.

Shapes: N = E + U nodes, M edges, d dim, L layers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mikgnn.baselines.kge import TransR, TripleSampler
from mikgnn.config import ModelConfig
from mikgnn.models.base import Recommender, TrainOutput
from mikgnn.processed import ProcessedDataset


def collaborative_kg(data: ProcessedDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(head, relation, tail) [M] of the CKG, users numbered E..E+U-1, and its relation count:
    the KG's R, their inverses R..2R-1, interact 2R and interacted-by 2R + 1."""
    kg, train = data.kg, data.splits["train"]
    positive = train["label"] == 1
    users = train["user"][positive] + data.n_entities
    items = train["item"][positive]
    r = data.n_relations
    head = np.concatenate([kg["head"], kg["tail"], users, items])
    tail = np.concatenate([kg["tail"], kg["head"], items, users])
    relation = np.concatenate([kg["relation"], kg["relation"] + r, np.full(users.size, 2 * r),
                               np.full(users.size, 2 * r + 1)])
    edges = np.unique(np.stack([head, relation, tail], 1), axis=0)
    return edges[:, 0], edges[:, 1], edges[:, 2], 2 * r + 2


class BiInteraction(nn.Module):
    """Eq. (8)."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.w1, self.w2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, e: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.w1(e + neighbours)) + F.leaky_relu(self.w2(e * neighbours))  # [N, d]
        return F.normalize(self.dropout(out), dim=-1)


def _forget_attention(module: KGAT, _incompatible_keys) -> None:
    module.end_epoch()  # π belongs to the weights it was computed from


class KGAT(Recommender):
    def __init__(self, *, n_users: int, n_items: int, n_entities: int, edges: tuple[np.ndarray, ...],
                 n_relations: int, dim: int, layers: int, dropout: float, triples: TripleSampler, kg_weight: float):
        super().__init__()
        self.n_users, self.n_items, self.n_entities = n_users, n_items, n_entities
        self.kg_weight, self.triples = kg_weight, triples
        self.node = nn.Embedding(n_entities + n_users, dim)  # e^(0): entities, then users
        self.transr = TransR(n_relations, dim, dim)  # e_r and W_r
        self.layers = nn.ModuleList(BiInteraction(dim, dropout) for _ in range(layers))
        head, relation, tail = (torch.from_numpy(a).long() for a in edges)
        order = torch.argsort(relation, stable=True)
        self.register_buffer("head", head[order], persistent=False)  # [M], grouped by relation
        self.register_buffer("tail", tail[order], persistent=False)
        self.register_buffer("relation", relation[order], persistent=False)
        self.relation_bounds = torch.searchsorted(relation[order], torch.arange(n_relations + 1)).tolist()
        self.pi: torch.Tensor | None = None  # π of the current epoch [M]; None: compute at next use
        self.register_load_state_dict_post_hook(_forget_attention)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.node.weight)

    @torch.no_grad()
    def attention(self) -> torch.Tensor:
        """π of every edge [M], softmax-normalised over each head's edges (Eq. 4-5)."""
        e = self.node.weight
        logits = torch.empty(self.head.numel(), device=e.device)
        for r, (lo, hi) in enumerate(zip(self.relation_bounds[:-1], self.relation_bounds[1:])):
            if hi > lo:
                w = self.transr.projection[r]  # W_r  [d, k]
                wh = e[self.head[lo:hi]] @ w  # [m, k]
                wt = e[self.tail[lo:hi]] @ w  # [m, k]
                logits[lo:hi] = (wt * torch.tanh(wh + self.transr.relation.weight[r])).sum(-1)  # Eq. (4)
        peak = torch.full((self.node.num_embeddings,), -torch.inf, device=e.device)
        peak = peak.scatter_reduce(0, self.head, logits, reduce="amax")
        weights = torch.exp(logits - peak[self.head])  # [M]
        total = torch.zeros_like(peak).index_add_(0, self.head, weights)
        return weights / total[self.head]  # Eq. (5)

    def end_epoch(self) -> None:
        self.pi = None

    def epoch_attention(self) -> torch.Tensor:
        """The epoch's π [M]: ``attention()`` of the weights at the epoch's first use."""
        if self.pi is None or self.pi.device != self.node.weight.device:
            self.pi = self.attention()
        return self.pi

    def propagate(self) -> torch.Tensor:
        """e* of every node [N, (L + 1) d], Eq. (3), (8), (11)."""
        n = self.node.num_embeddings
        a = torch.sparse_coo_tensor(torch.stack([self.head, self.tail]), self.epoch_attention(), (n, n),
                                    check_invariants=False)  # [N, N]: indices valid by construction
        e = self.node.weight
        outputs = [e]
        for layer in self.layers:
            e = layer(e, torch.sparse.mm(a, e))  # [N, d]
            outputs.append(e)
        return torch.cat(outputs, -1)

    def forward_train(self, users: torch.Tensor, items: torch.Tensor) -> TrainOutput:
        final = self.propagate()
        logits = (final[users + self.n_entities] * final[items]).sum(-1)  # Eq. (12)  [B]
        return TrainOutput(logits, [self.node(users + self.n_entities), self.node(items)])

    def auxiliary_loss(self, batch: int) -> torch.Tensor:
        h, r, t, corrupt = self.triples.sample(batch, self.device)  # [B] each
        loss = self.transr.loss(self.node(h), r, self.node(t), self.node(corrupt))  # Eq. (2)
        return self.kg_weight * loss

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        final = self.propagate()
        items = self.all_items() if items is None else items
        return final[users + self.n_entities] @ final[items].T  # [U, I]

    def l2_tensors(self, relations: bool = True) -> list[torch.Tensor]:
        return [self.node.weight, self.transr.projection, *self.dense_weights()] + (
            [self.transr.relation.weight] if relations else [])

    def dense_weights(self) -> list[torch.Tensor]:
        return [w for layer in self.layers for w in (layer.w1.weight, layer.w2.weight)]


def build_kgat(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> KGAT:
    *edges, n_relations = collaborative_kg(data)
    kg = data.kg
    triples = TripleSampler(kg["head"], kg["relation"], kg["tail"], data.n_entities, seed)
    return KGAT(n_users=data.n_users, n_items=data.n_items, n_entities=data.n_entities, edges=tuple(edges),
                n_relations=n_relations, dim=cfg.dim, layers=cfg.hops, dropout=cfg.dropout, triples=triples,
                kg_weight=cfg.kg_weight)
