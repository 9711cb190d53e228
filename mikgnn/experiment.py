"""Build a model from a processed dataset and fit it with early stopping (single process)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from mikgnn.bpr import NegativeSampler
from mikgnn.config import FIELD_MODELS, MODEL_TITLES, ModelConfig, TrainConfig, check_field_memory
from mikgnn.label_smoothness import InteractionTable
from mikgnn.models import Recommender, build_model
from mikgnn.processed import ProcessedDataset
from mikgnn.training import (
    DataParallelStep,
    Rows,
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
    attends: str | None = None  # the model's name when its neighbour weights are learned (MI-KGNN, KGCN)


def resolve_device(name: str) -> torch.device:
    """``TrainConfig.device``: auto takes the GPU when torch sees one."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no GPU (torch.cuda.is_available() is False)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def build(data: ProcessedDataset, model_cfg: ModelConfig, train_cfg: TrainConfig,
          device: torch.device | None = None) -> Experiment:
    """The model, its optimizer and the splits; on ``device`` (default: ``train_cfg.device``)."""
    check_field_memory(model_cfg, train_cfg)
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
    attends = (MODEL_TITLES[model_cfg.model] if model_cfg.model in FIELD_MODELS and model_cfg.attention != "uniform"
               else None)
    return Experiment(model, optimizer, splits, data.n_items, ls_table, negatives, attends)


# "Not learning" (``learning_warning``): after WARN_EPOCHS epochs, a training loss that has moved
# less than LOSS_MOVED of its first value, a validation AUC below AUC_FLOOR that gained less
# than AUC_GAIN over the last 3 epochs. The loss alone is no signal: MI-KGNN's music default
# moves it 0.8 % in 5 epochs (full-table λ keeps its logits small) while its AUC climbs
# 0.52 -> 0.81; the run of issue 16 moved it 1.4 % in 8 epochs with its AUC flat at 0.65.
WARN_EPOCHS, LOSS_MOVED, AUC_FLOOR, AUC_GAIN = 5, 0.02, 0.7, 0.01
AUC = "valid/auc"
# Uniform attention (``attention_warning``): after ATTENTION_EPOCHS epochs the neighbour weights'
# normalised entropy still >= UNIFORM. Where the attention learns (docs/model.md) it is 1.0000
# for the first three epochs, then 0.89, 0.68, ... as the embeddings grow.
ATTENTION_EPOCHS, UNIFORM = 6, 0.999
LEARNING_ATTENTION = "--set l2_relations=false --set logits=dot --set logit_scale=1000 --variant w-a"


def learning_warning(history: list[dict], cfg: TrainConfig) -> str | None:
    """Why this run looks untrained, naming the likely cause and the flag to change; or None."""
    if len(history) < WARN_EPOCHS:
        return None
    first, last = history[0]["train/loss"], history[-1]["train/loss"]
    moved = abs(first - last) / max(abs(first), 1e-12)
    auc = history[-1][AUC]
    gain = auc - max(h[AUC] for h in history[-4:-1])
    if moved >= LOSS_MOVED or auc >= AUC_FLOOR or gain >= AUC_GAIN:
        return None
    return (f"not learning: after {len(history)} epochs the training loss moved {100 * moved:.1f} % "
            f"({first:.4f} -> {last:.4f}) and the validation AUC is {auc:.4f} ({gain:+.4f} over the last 3 "
            f"epochs). Likely causes: the learning rate is too small for this data (try --set lr={cfg.lr * 10:g}), "
            f"λ holds the embeddings near zero (try --set l2={cfg.l2 / 10:g}), or the initial scale is too small "
            f"(try --set init_std=0.1)")


@dataclass
class FitState:
    """Early stopping on valid/<select_metric>: everything a resumed run needs to continue."""

    epoch: int = 0
    best: float = -float("inf")
    best_epoch: int = 0
    waited: int = 0  # epochs since the metric last rose above ``level`` by more than min_delta
    level: float = -float("inf")  # the metric at that rise
    best_state: dict | None = None
    history: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def check_learning(self, cfg: TrainConfig, attends: str | None = None) -> str | None:
        """The "collapsed" and "not learning" warnings, and for a model whose neighbour weights
        are learned (``attends``, its name) the uniform-attention one: each once per run,
        returned (and kept) the epoch it fires."""
        found = (collapse_warning(self.history, cfg), learning_warning(self.history, cfg),
                 attention_warning(self.history, attends))
        for warning in found:
            if warning is not None and not any(w.split(":")[0] == warning.split(":")[0] for w in self.warnings):
                self.warnings.append(warning)
                return warning
        return None

    def converged(self, cfg: TrainConfig) -> bool:
        """``cfg.patience`` epochs in a row without a rise of more than ``cfg.min_delta``."""
        return self.waited >= cfg.patience

    def update(self, metrics: dict[str, float], model: nn.Module, cfg: TrainConfig) -> bool:
        """Record an epoch; True when training should stop: ``cfg.patience`` epochs in a row
        without a rise of more than ``cfg.min_delta`` (converged). The best epoch, whose weights
        are kept, is the one of the highest metric, however small its lead."""
        self.epoch = int(metrics["epoch"])
        self.history.append(metrics)
        key = f"valid/{cfg.select_metric}"
        if metrics[key] > self.best:
            self.best, self.best_epoch = metrics[key], self.epoch
            self.best_state = copy.deepcopy(model.state_dict())
        if metrics[key] > self.level + cfg.min_delta:
            self.level, self.waited = metrics[key], 0
        else:
            self.waited += 1
        return self.converged(cfg)


def run_epoch(exp: Experiment, cfg: TrainConfig, epoch: int, batches,
              parallel: DataParallelStep | None = None) -> dict[str, float]:
    """Train one epoch and validate: the metrics of that epoch."""
    stats = train_epoch(exp.model, exp.optimizer, batches, cfg, exp.ls_table, exp.negatives, parallel)
    metrics = {"epoch": epoch, "train/loss": stats["loss"], "train/l2": stats["l2"], "train/seconds": stats["seconds"]}
    topk = cfg.topk_every > 0 and epoch % cfg.topk_every == 0
    metrics.update(evaluate(exp.model, "valid", exp.splits["valid"], exp.splits["train"], exp.n_items, cfg, topk))
    metrics.update(diagnostics(exp.model, exp.splits["valid"]))
    return metrics


def collapse_warning(history: list[dict], cfg: TrainConfig) -> str | None:
    """A collapsed run, from its second epoch: the training loss at log 2 (every logit 0) and
    the item embeddings at zero, where λ holds them; or None."""
    if len(history) < 2 or "item_norm" not in history[-1]:
        return None
    loss, norm = history[-1]["train/loss"], history[-1]["item_norm"]
    if abs(loss - math.log(2)) > 1e-4 or norm > 1e-6:
        return None
    return (f"collapsed: at epoch {len(history)} the training loss is log 2 ({loss:.5f}, every score 0) and the item "
            f"embeddings are zero (norm {norm:.1g}): λ = {cfg.l2:g} holds them there; try --set l2={cfg.l2 / 100:g}")


def attention_warning(history: list[dict], attends: str | None) -> str | None:
    """The KG attention still uniform after the first epochs: the model then weighs every
    neighbour the same, as KGCN-avg does; or None."""
    if attends is None or len(history) < ATTENTION_EPOCHS:
        return None
    last = history[-1]
    entropy = last.get("attention_entropy_distinct", last.get("attention_entropy"))
    if entropy is None or entropy < UNIFORM:
        return None
    return (f"uniform attention: the KG attention is uniform (entropy {entropy:.3f} at epoch {len(history)}): "
            f"{attends} is acting as KGCN-avg here. Settings measured to let it learn (docs/model.md): "
            f"{LEARNING_ATTENTION}")


def convergence_warning(state: FitState, cfg: TrainConfig) -> str | None:
    """A run that spent its whole epoch budget while validation was still improving: its best
    epoch within the last ``patience`` epochs (at most the last half of the run, so that a run
    whose patience outlasts its budget is not always flagged). Early stopping did not end it."""
    window = min(cfg.patience, max(1, cfg.epochs // 2))
    if state.epoch < cfg.epochs or state.converged(cfg) or state.best_epoch <= cfg.epochs - window:
        return None
    return (f"not converged: validation {cfg.select_metric.upper()} still rising at epoch {state.best_epoch} of "
            f"{cfg.epochs}, the epoch budget; raise --epochs (early stopping, patience {cfg.patience}, ends it)")


def finish(exp: Experiment, state: FitState, cfg: TrainConfig) -> dict:
    """Test the best epoch's weights; the result of the whole fit (``warnings``: the "not
    learning" one if it fired, and "not converged" when the budget, not early stopping, ended it)."""
    late = convergence_warning(state, cfg)
    if late is not None and late not in state.warnings:
        state.warnings.append(late)
    exp.model.load_state_dict(state.best_state)
    valid = {k: v for k, v in state.history[state.best_epoch - 1].items() if k.startswith("valid/")}
    if f"valid/recall@{cfg.ks[0]}" not in valid:  # cfg.topk_every skipped that epoch's top-K
        topk = evaluate(exp.model, "valid", exp.splits["valid"], exp.splits["train"], exp.n_items, cfg)
        valid.update({k: v for k, v in topk.items() if k not in valid})
    test = evaluate(exp.model, "test", exp.splits["test"], exp.splits["train"], exp.n_items, cfg)
    return {"best_epoch": state.best_epoch, **valid, **test, "history": state.history,
            "epoch_seconds": [h["train/seconds"] for h in state.history], "warnings": state.warnings}


def fit(exp: Experiment, cfg: TrainConfig,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict:
    """Train with early stopping on valid/<select_metric>; test the best epoch's weights."""
    generator = torch.Generator().manual_seed(cfg.seed)
    state = FitState()
    rows, device = training_rows(exp.splits["train"], cfg), exp.model.device
    for epoch in range(1, cfg.epochs + 1):
        batches = (b.to(device) for b in shuffled_batches(rows, cfg.batch_size, generator))
        metrics = run_epoch(exp, cfg, epoch, batches)
        stop = state.update(metrics, exp.model, cfg)
        warning = state.check_learning(cfg, exp.attends)
        if on_epoch is not None:
            on_epoch(epoch, metrics | ({"warning": warning} if warning else {}))
        if stop:
            break
    return finish(exp, state, cfg)
