"""Build a model from a processed dataset and fit it with early stopping (single process)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.graph import sample_neighbours
from mikgnn.label_smoothness import InteractionTable
from mikgnn.model import MF, MIKGNN
from mikgnn.processed import ProcessedDataset
from mikgnn.training import Rows, attention_diagnostics, evaluate, shuffled_batches, train_epoch


@dataclass
class Experiment:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    splits: dict[str, Rows]
    n_items: int
    ls_table: InteractionTable | None


def build_model(data: ProcessedDataset, cfg: ModelConfig, seed: int) -> nn.Module:
    """The model of ``cfg`` over ``data``; neighbour tables are drawn from ``seed``."""
    torch.manual_seed(seed)
    if cfg.model == "mf":
        return MF(n_users=data.n_users, n_items=data.n_items, dim=cfg.dim)
    kg = data.kg
    tables = sample_neighbours(kg["head"], kg["relation"], kg["tail"], data.n_entities,
                               data.n_relations, cfg.n_neighbours, seed)
    return MIKGNN(n_users=data.n_users, n_entities=data.n_entities, n_relations=tables.n_relation_ids,
                  adj_entity=torch.from_numpy(tables.entity), adj_relation=torch.from_numpy(tables.relation),
                  config=cfg)


def build(data: ProcessedDataset, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Experiment:
    model = build_model(data, model_cfg, train_cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.lr)
    splits = {name: Rows.from_numpy(cols) for name, cols in data.splits.items()}
    ls_table = None
    if train_cfg.ls_weight > 0 and model_cfg.model != "mf":
        train = splits["train"]
        ls_table = InteractionTable(train.user, train.item, train.label, data.n_entities)
    return Experiment(model, optimizer, splits, data.n_items, ls_table)


def fit(exp: Experiment, cfg: TrainConfig,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict:
    """Train with early stopping on valid/<select_metric>; test the best epoch's weights."""
    generator = torch.Generator().manual_seed(cfg.seed)
    train = exp.splits["train"]
    key = f"valid/{cfg.select_metric}"
    best, best_epoch, best_state, waited = -float("inf"), 0, None, 0
    history = []
    for epoch in range(1, cfg.epochs + 1):
        stats = train_epoch(exp.model, exp.optimizer, shuffled_batches(train, cfg.batch_size, generator),
                            cfg, exp.ls_table)
        metrics = {"epoch": epoch, "train/loss": stats["loss"], "train/seconds": stats["seconds"]}
        metrics.update(evaluate(exp.model, "valid", exp.splits["valid"], train, exp.n_items, cfg))
        metrics.update(attention_diagnostics(exp.model, exp.splits["valid"]))
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if metrics[key] > best:
            best, best_epoch, waited = metrics[key], epoch, 0
            best_state = copy.deepcopy(exp.model.state_dict())
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    exp.model.load_state_dict(best_state)
    test = evaluate(exp.model, "test", exp.splits["test"], train, exp.n_items, cfg)
    valid = {k: v for k, v in history[best_epoch - 1].items() if k.startswith("valid/")}
    return {"best_epoch": best_epoch, **valid, **test, "history": history,
            "epoch_seconds": [h["train/seconds"] for h in history]}
