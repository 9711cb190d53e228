"""The recommenders, one contract (``base.Recommender``), built from a processed dataset."""

from __future__ import annotations

import torch

from mikgnn.config import ModelConfig
from mikgnn.graph import sample_neighbours
from mikgnn.models.base import Field, Recommender, TrainOutput
from mikgnn.models.mf import MF
from mikgnn.models.mikgnn import MIKGNN
from mikgnn.processed import ProcessedDataset

__all__ = ["MF", "MIKGNN", "Field", "Recommender", "TrainOutput", "build_model", "needs_train_rows"]


def needs_train_rows(cfg: ModelConfig) -> bool:
    """Whether the model is built from the train split's rows (a user-item graph), so every
    data-parallel worker must load them."""
    from mikgnn.baselines import NEEDS_TRAIN_ROWS

    return cfg.model in NEEDS_TRAIN_ROWS


def build_model(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> Recommender:
    """The model of ``cfg`` over ``data``; neighbour tables are drawn from ``seed``."""
    torch.manual_seed(seed)
    from mikgnn.baselines import BUILDERS  # the baselines build on this package's contract

    if cfg.model in BUILDERS:
        return BUILDERS[cfg.model](data, cfg, seed)
    if cfg.model == "mf":
        return MF(n_users=data.n_users, n_items=data.n_items, dim=cfg.dim)
    kg = data.kg
    tables = sample_neighbours(kg["head"], kg["relation"], kg["tail"], data.n_entities,
                               data.n_relations, cfg.n_neighbours, seed)
    return MIKGNN(n_users=data.n_users, n_items=data.n_items, n_entities=data.n_entities,
                  n_relations=tables.n_relation_ids, adj_entity=torch.from_numpy(tables.entity),
                  adj_relation=torch.from_numpy(tables.relation), config=cfg)
