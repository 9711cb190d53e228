"""Build a model from a processed dataset and fit it with early stopping (single process)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from mikgnn.bpr import NegativeSampler
from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.label_smoothness import InteractionTable
from mikgnn.models import Recommender, build_model
from mikgnn.processed import ProcessedDataset
from mikgnn.training import (
    Rows,
    StepHooks,
    diagnostics,
    evaluate,
    make_optimizer,
    shuffled_batches,
    train_epoch,
    training_rows,
)


@dataclass
class Experiment:
    model: Recommender
    optimizer: torch.optim.Optimizer
    splits: dict[str, Rows]
    n_items: int
    ls_table: InteractionTable | None
    negatives: NegativeSampler | None = None  # BPR's sampler (loss "bpr")


def resolve_device(name: str) -> torch.device:
    """``TrainConfig.device``: auto takes the GPU when torch sees one."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no GPU (torch.cuda.is_available() is False)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def build(data: ProcessedDataset, model_cfg: ModelConfig, train_cfg: TrainConfig,
          device: torch.device | None = None) -> Experiment:
    """The model, its optimizer and the splits; on ``device`` (default: ``train_cfg.device``)."""
    device = device or resolve_device(train_cfg.device)
    model = build_model(data, model_cfg, train_cfg.seed).to(device)
    optimizer = make_optimizer(model, train_cfg)
    splits = {name: Rows.from_numpy(cols) for name, cols in data.splits.items()}
    ls_table = negatives = None
    train = splits.get("train")
    if train_cfg.ls_weight > 0 and model_cfg.model != "mf":
        ls_table = InteractionTable(train.user, train.item, train.label, data.n_entities).to(device)
    if train_cfg.loss == "bpr" and train is not None:
        negatives = NegativeSampler(train.user, train.item, train.label, data.n_items, train_cfg.seed).to(device)
    return Experiment(model, optimizer, splits, data.n_items, ls_table, negatives)


@dataclass
class FitState:
    """Early stopping on valid/<select_metric>: everything a resumed run needs to continue."""

    epoch: int = 0
    best: float = -float("inf")
    best_epoch: int = 0
    waited: int = 0
    best_state: dict | None = None
    history: list[dict] = field(default_factory=list)

    def update(self, metrics: dict[str, float], key: str, model: nn.Module, patience: int) -> bool:
        """Record an epoch; True when training should stop."""
        self.epoch = int(metrics["epoch"])
        self.history.append(metrics)
        if metrics[key] > self.best:
            self.best, self.best_epoch, self.waited = metrics[key], self.epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.waited += 1
        return self.waited >= patience


def run_epoch(exp: Experiment, cfg: TrainConfig, epoch: int, batches,
              hooks: StepHooks | None = None) -> dict[str, float]:
    """Train one epoch and validate: the metrics of that epoch."""
    stats = train_epoch(exp.model, exp.optimizer, batches, cfg, exp.ls_table, hooks, exp.negatives)
    metrics = {"epoch": epoch, "train/loss": stats["loss"], "train/l2": stats["l2"], "train/seconds": stats["seconds"]}
    metrics.update(evaluate(exp.model, "valid", exp.splits["valid"], exp.splits["train"], exp.n_items, cfg))
    metrics.update(diagnostics(exp.model, exp.splits["valid"]))
    return metrics


def finish(exp: Experiment, state: FitState, cfg: TrainConfig) -> dict:
    """Test the best epoch's weights; the result of the whole fit."""
    exp.model.load_state_dict(state.best_state)
    test = evaluate(exp.model, "test", exp.splits["test"], exp.splits["train"], exp.n_items, cfg)
    valid = {k: v for k, v in state.history[state.best_epoch - 1].items() if k.startswith("valid/")}
    return {"best_epoch": state.best_epoch, **valid, **test, "history": state.history,
            "epoch_seconds": [h["train/seconds"] for h in state.history]}


def fit(exp: Experiment, cfg: TrainConfig,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict:
    """Train with early stopping on valid/<select_metric>; test the best epoch's weights."""
    generator = torch.Generator().manual_seed(cfg.seed)
    state = FitState()
    rows, device = training_rows(exp.splits["train"], cfg), exp.model.device
    for epoch in range(1, cfg.epochs + 1):
        batches = (b.to(device) for b in shuffled_batches(rows, cfg.batch_size, generator))
        metrics = run_epoch(exp, cfg, epoch, batches)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if state.update(metrics, f"valid/{cfg.select_metric}", exp.model, cfg.patience):
            break
    return finish(exp, state, cfg)
