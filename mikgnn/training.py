"""One training loop and one evaluation, shared by the single-process and Ray Train drivers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mikgnn.config import TrainConfig
from mikgnn.label_smoothness import InteractionTable, label_smoothness_loss
from mikgnn.metrics import auc, batch_mean_auc, f1_at_half, ranking_users, topk_metrics
from mikgnn.model import Propagation

SCORE_BATCH = 65_536


@dataclass(frozen=True)
class Rows:
    """Labelled rows of one split as tensors [N]."""

    user: torch.Tensor
    item: torch.Tensor
    label: torch.Tensor

    @classmethod
    def from_numpy(cls, columns: dict[str, np.ndarray]) -> Rows:
        return cls(*(torch.tensor(columns[c], dtype=torch.long)
                     for c in ("user", "item", "label")))

    def __len__(self) -> int:
        return self.user.numel()

    def to(self, device: torch.device | str) -> Rows:
        return Rows(self.user.to(device), self.item.to(device), self.label.to(device))


def shuffled_batches(rows: Rows, batch_size: int, generator: torch.Generator) -> Iterator[Rows]:
    order = torch.randperm(len(rows), generator=generator)
    for start in range(0, len(rows), batch_size):
        idx = order[start : start + batch_size]
        yield Rows(rows.user[idx], rows.item[idx], rows.label[idx])


def l2_penalty(model: nn.Module, p: Propagation | None, cfg: TrainConfig) -> torch.Tensor:
    """λ-free L2 term. full: half the squared norm of the whole tables and the aggregation
    weights (tf.nn.l2_loss, KGCN's code); batch: of the rows this batch used, plus weights;
    w1w2: the literal ‖W1 + W2‖² of Eq. (24), summed over iterations (a constant, left out,
    for an identity transform's fixed W1 = W2 = I)."""
    if cfg.l2_mode == "w1w2":
        terms = [(layer.w1.weight + layer.w2.weight if layer.w2 is not None else layer.w1.weight).pow(2).sum()
                 for layer in model.layers if layer.w1 is not None]
        return torch.stack(terms).sum() if terms else model.user.weight.new_zeros(())
    tables = full_l2_tensors(model, cfg) if cfg.l2_mode == "full" else _batch_l2_tensors(model, p, cfg)
    return 0.5 * sum(t.pow(2).sum() for t in tables)


def full_l2_tensors(model: nn.Module, cfg: TrainConfig) -> list[torch.Tensor]:
    """What the full-table L2 penalises: the user and entity tables (and relations), and every
    aggregation weight."""
    tables = [model.user.weight, model.entity.weight]
    if cfg.l2_relations and hasattr(model, "relation"):
        tables.append(model.relation.weight)
    return tables + [w for layer in getattr(model, "layers", []) for w in layer.parameters()]


def _batch_l2_tensors(model: nn.Module, p: Propagation, cfg: TrainConfig) -> list[torch.Tensor]:
    weights = [w for layer in getattr(model, "layers", []) for w in layer.parameters()]
    return (list(p.embedded) if cfg.l2_relations else p.embedded[: len(p.entities) + 1]) + weights


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (fused kernels). The full-table L2 is its weight decay on exactly the tensors that
    ``full_l2_tensors`` names: Adam's (coupled) weight decay adds λ·w to the gradient, the
    gradient of λ·½‖w‖². So it is applied after the gradients of the data loss are averaged
    across workers, needs no communication, and costs no extra pass over the tables."""
    decayed = {id(w) for w in full_l2_tensors(model, cfg)} if cfg.l2 > 0 and cfg.l2_mode == "full" else set()
    groups = [{"params": [w for w in model.parameters() if id(w) in decayed], "weight_decay": cfg.l2},
              {"params": [w for w in model.parameters() if id(w) not in decayed], "weight_decay": 0.0}]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr, fused=True)


def touched_rows(batch: Rows, p: Propagation) -> dict[str, torch.Tensor]:
    """The embedding rows a step looked up, by parameter name: the only rows whose gradient
    of the data loss can be non-zero."""
    return {"user.weight": batch.user, "entity.weight": torch.cat([e.reshape(-1) for e in p.entities])}


@dataclass(frozen=True)
class StepHooks:
    """Where a data-parallel driver synchronises its workers (``mikgnn.distributed``).

    after_backward(model, touched_rows): between backward and the optimizer step (gradient
    averaging); after_step(model): after the optimizer step (periodic model averaging);
    end_of_epoch(model): after the last step, before any validation.
    """

    after_backward: Callable[[nn.Module, dict[str, torch.Tensor]], None] | None = None
    after_step: Callable[[nn.Module], None] | None = None
    end_of_epoch: Callable[[nn.Module], None] | None = None


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches, cfg: TrainConfig,
                ls_table: InteractionTable | None = None, hooks: StepHooks | None = None) -> dict[str, float]:
    """One pass over ``batches`` (an iterable of Rows); returns the mean loss, the L2 term at
    the end of the epoch, and the seconds.

    The full-table L2 is not in the loss: it is the weight decay of the optimizer
    (``make_optimizer``), applied after ``hooks.after_backward``. "loss" is the mean of the
    other terms (the data loss, label smoothness, batch-only or W1+W2 L2) and "l2" is λ times
    the L2 term, so loss + l2 is Eq. (24).
    """
    hooks = hooks or StepHooks()
    model.train()
    l2_in_optimizer = cfg.l2 > 0 and cfg.l2_mode == "full"
    start, total, count = time.perf_counter(), 0.0, 0
    for batch in batches:
        p = model.propagate(batch.user, batch.item)
        logits = (p.user * p.item).sum(-1)  # Eq. (23)  [B]
        loss = F.binary_cross_entropy_with_logits(logits, batch.label.float())  # Eq. (24)
        if cfg.l2 > 0 and not l2_in_optimizer:
            loss = loss + cfg.l2 * l2_penalty(model, p, cfg)
        if ls_table is not None and cfg.ls_weight > 0 and p.first_weights:
            loss = loss + cfg.ls_weight * label_smoothness_loss(p, batch.user, batch.label, ls_table)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if hooks.after_backward is not None:
            hooks.after_backward(model, touched_rows(batch, p))
        optimizer.step()
        if hooks.after_step is not None:
            hooks.after_step(model)
        total += float(loss.detach()) * len(batch)
        count += len(batch)
    if hooks.end_of_epoch is not None:
        hooks.end_of_epoch(model)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        l2 = cfg.l2 * float(l2_penalty(model, None, cfg)) if l2_in_optimizer else 0.0
    return {"loss": total / max(count, 1), "l2": l2, "seconds": seconds}


@torch.no_grad()
def predict(model: nn.Module, rows: Rows) -> np.ndarray:
    model.eval()
    device = _device(model)
    out = [model.score(rows.user[s : s + SCORE_BATCH].to(device), rows.item[s : s + SCORE_BATCH].to(device)).cpu()
           for s in range(0, len(rows), SCORE_BATCH)]
    return torch.cat(out).numpy()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model: nn.Module, split: str, rows: Rows, train: Rows, n_items: int, cfg: TrainConfig,
             topk: bool = True) -> dict[str, float]:
    """CTR metrics over the whole split and top-K metrics under cfg.protocol, keyed 'split/metric'."""
    model.eval()
    start = time.perf_counter()
    logits = predict(model, rows)
    labels = rows.label.numpy()
    out = {
        "auc": auc(labels, logits),
        "f1": f1_at_half(labels, 1.0 / (1.0 + np.exp(-logits))),
        "auc_kgcn_batch_mean": batch_mean_auc(labels, logits, cfg.batch_size),
    }
    if topk:
        users = ranking_users(rows.user.numpy(), labels, cfg.protocol, cfg.eval_users, cfg.seed)
        positive = labels == 1
        device = _device(model)
        all_items = torch.arange(n_items, device=device)
        out.update(topk_metrics(
            lambda u: model.score_grid(u.to(device), all_items).cpu(), users,
            train.user.numpy(), train.item.numpy(),
            rows.user.numpy()[positive], rows.item.numpy()[positive], n_items, cfg.ks,
        ))
    out["seconds"] = time.perf_counter() - start
    return {f"{split}/{k}": v for k, v in out.items()}


def attention_diagnostics(model: nn.Module, rows: Rows, sample: int = 4096) -> dict[str, float]:
    """Does the attention learn? Normalised entropy and spread of the final neighbour weights
    over the item's neighbours (entropy 1 and spread 0 mean uniform weights), and the mean
    norm of the relation embeddings, and of the items' and their KG neighbours' embeddings
    (a KG whose neighbour rows shrink to zero contributes nothing to the item vectors).

    Neighbours are sampled with replacement, so an item with one KG edge fills its n slots
    with one neighbour and any attention is uniform over them. The ``_distinct`` entropy
    counts only items with at least two distinct (entity, relation) neighbours, and
    ``distinct_share`` says how many of the rows those are."""
    if not hasattr(model, "relation"):
        return {}
    with torch.no_grad():
        model.eval()
        device = _device(model)
        items = rows.item[:sample].to(device)
        p = model.propagate(rows.user[:sample].to(device), items)
        w = p.hop0_weights.squeeze(1)  # [B, f]
        f = w.shape[-1]
        entropy = -(w.clamp_min(1e-12).log() * w).sum(-1) / math.log(f) if f > 1 else torch.ones(len(w))
        keys = (model.adj_entity[items] * model.relation.weight.shape[0] + model.adj_relation[items]).sort(-1).values
        distinct = (keys[:, 1:] != keys[:, :-1]).any(-1)  # [B]
        out = {
            "attention_entropy": float(entropy.mean()),
            "attention_spread": float((w.max(-1).values - w.min(-1).values).mean()),
            "relation_norm": float(model.relation.weight.norm(dim=-1).mean().cpu()),
            "attention_distinct_share": float(distinct.float().mean()),
            "item_norm": float(model.entity(items).norm(dim=-1).mean().cpu()),
            "neighbour_norm": float(model.entity(model.adj_entity[items]).norm(dim=-1).mean().cpu()),
        }
        if bool(distinct.any()):
            out["attention_entropy_distinct"] = float(entropy[distinct].mean())
        return out
