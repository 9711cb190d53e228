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

from mikgnn.bpr import NegativeSampler, bpr_loss
from mikgnn.config import TrainConfig
from mikgnn.label_smoothness import InteractionTable, label_smoothness_loss
from mikgnn.metrics import auc, batch_mean_auc, f1_at_half, ranking_users, topk_metrics
from mikgnn.models import Recommender, TrainOutput


class NonFiniteLoss(ArithmeticError):
    """The training loss became NaN or infinite: the run stops at once and counts as failed."""


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

    def positives(self) -> Rows:
        keep = self.label == 1
        return Rows(self.user[keep], self.item[keep], self.label[keep])


def training_rows(rows: Rows, cfg: TrainConfig) -> Rows:
    """What an epoch iterates over: every labelled row for BCE, the positive rows for BPR
    (each is paired with a negative sampled at its step)."""
    return rows.positives() if cfg.loss == "bpr" else rows


def shuffled_batches(rows: Rows, batch_size: int, generator: torch.Generator) -> Iterator[Rows]:
    order = torch.randperm(len(rows), generator=generator)
    for start in range(0, len(rows), batch_size):
        idx = order[start : start + batch_size]
        yield Rows(rows.user[idx], rows.item[idx], rows.label[idx])


def l2_penalty(model: Recommender, out: TrainOutput | None, cfg: TrainConfig) -> torch.Tensor:
    """λ-free L2 term. full: half the squared norm of the whole tables and the aggregation
    weights (tf.nn.l2_loss, KGCN's code); batch: of the rows this batch used, plus weights;
    w1w2: the literal ‖W1 + W2‖² of Eq. (24), summed over iterations (a constant, left out,
    for an identity transform's fixed W1 = W2 = I)."""
    if cfg.l2_mode == "w1w2":
        penalty = model.transform_penalty()
        return penalty if penalty is not None else torch.zeros((), device=model.device)
    tables = model.l2_tensors(cfg.l2_relations) if cfg.l2_mode == "full" else _batch_l2_tensors(model, out, cfg)
    return 0.5 * sum(t.pow(2).sum() for t in tables)


def _batch_l2_tensors(model: Recommender, out: TrainOutput, cfg: TrainConfig) -> list[torch.Tensor]:
    return out.embedded + (out.embedded_relations if cfg.l2_relations else []) + model.dense_weights()


def make_optimizer(model: Recommender, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (fused kernels). The full-table L2 is its weight decay on exactly the tensors that
    ``model.l2_tensors`` names: Adam's (coupled) weight decay adds λ·w to the gradient, the
    gradient of λ·½‖w‖². So it is applied after the gradients of the data loss are averaged
    across workers, needs no communication, and costs no extra pass over the tables."""
    decayed = {id(w) for w in model.l2_tensors(cfg.l2_relations)} if cfg.l2_in_optimizer else set()
    groups = [{"params": [w for w in model.parameters() if id(w) in decayed], "weight_decay": cfg.l2},
              {"params": [w for w in model.parameters() if id(w) not in decayed], "weight_decay": 0.0}]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr, fused=True)


class StepLoss(nn.Module):
    """The loss of one training step as a module: what a data-parallel worker wraps in DDP, so
    that its backward averages the gradients across the workers (``mikgnn.distributed``).
    The label-smoothness table and the negative sampler are per-worker state, not submodules."""

    def __init__(self, model: Recommender, cfg: TrainConfig, ls_table: InteractionTable | None = None,
                 negatives: NegativeSampler | None = None) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self.per_worker = (ls_table, negatives)

    def forward(self, user: torch.Tensor, item: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return step_loss(self.model, Rows(user, item, label), self.cfg, *self.per_worker)


@dataclass(frozen=True)
class DataParallelStep:
    """How the workers of a data-parallel run step together (``mikgnn.distributed.train_loop``
    builds it). ``loss``: the ``StepLoss`` that runs, e.g. wrapped in DDP; ``optimizer``: the
    one that steps, e.g. torch's ``PostLocalSGDOptimizer``; ``end_of_epoch``: leaves every
    worker with the same parameters before any validation."""

    loss: nn.Module
    optimizer: torch.optim.Optimizer
    end_of_epoch: Callable[[], None] | None = None


def train_epoch(model: Recommender, optimizer: torch.optim.Optimizer, batches, cfg: TrainConfig,
                ls_table: InteractionTable | None = None, negatives: NegativeSampler | None = None,
                parallel: DataParallelStep | None = None) -> dict[str, float]:
    """One pass over ``batches`` (an iterable of Rows; ``training_rows``); returns the mean loss,
    the L2 term at the end of the epoch, and the seconds.

    The recommendation loss is BCE on the labelled rows (Eq. (24)) or, with ``cfg.loss ==
    "bpr"``, BPR over each (positive) row and a negative from ``negatives``. The model's own
    term (``Recommender.auxiliary_loss``: a KG loss, an independence loss) is added to it.
    The full-table L2 is not in the loss: it is the weight decay of the optimizer
    (``make_optimizer``), applied to the averaged gradients. "loss" is the mean of the
    other terms (the data loss, label smoothness, batch-only or W1+W2 L2) and "l2" is λ times
    the L2 term, so loss + l2 is Eq. (24).
    """
    if parallel is None:
        parallel = DataParallelStep(StepLoss(model, cfg, ls_table, negatives), optimizer)
    model.train()
    start, total, count = time.perf_counter(), 0.0, 0
    for step, batch in enumerate(batches, 1):
        loss = parallel.loss(batch.user, batch.item, batch.label)
        parallel.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parallel.optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):  # a diverged run is a failure, never a result
            raise NonFiniteLoss(f"the training loss is {value} at step {step} of the "
                                f"epoch (lr {cfg.lr:g}, λ {cfg.l2:g}): training diverged; lower the learning rate")
        total += value * len(batch)
        count += len(batch)
    if parallel.end_of_epoch is not None:
        parallel.end_of_epoch()
    model.end_epoch()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        l2 = cfg.l2 * float(l2_penalty(model, None, cfg)) if cfg.l2_in_optimizer else 0.0
    return {"loss": total / max(count, 1), "l2": l2, "seconds": seconds}


def step_loss(model: Recommender, batch: Rows, cfg: TrainConfig, ls_table: InteractionTable | None = None,
              negatives: NegativeSampler | None = None, l2_in_optimizer: bool | None = None) -> torch.Tensor:
    """The loss of one training step: the data loss, the in-graph L2 (None: unless the
    optimizer's weight decay carries it), label smoothness, and the model's own terms."""
    if l2_in_optimizer is None:
        l2_in_optimizer = cfg.l2_in_optimizer
    out, loss = _data_loss(model, batch, cfg, negatives)
    if cfg.l2 > 0 and not l2_in_optimizer:
        loss = loss + cfg.l2 * l2_penalty(model, out, cfg)
    if ls_table is not None and cfg.ls_weight > 0 and out.field is not None:
        loss = loss + cfg.ls_weight * label_smoothness_loss(out.field, batch.user, batch.label, ls_table)
    if out.extra is not None:
        loss = loss + out.extra
    extra = model.auxiliary_loss(len(batch))
    if extra is not None:
        loss = loss + extra
    return loss


def _data_loss(model: Recommender, batch: Rows, cfg: TrainConfig,
               negatives: NegativeSampler | None) -> tuple[TrainOutput, torch.Tensor]:
    if cfg.loss == "bpr":
        if negatives is None:
            raise ValueError("loss 'bpr' needs a NegativeSampler over the training positives")
        out = model.forward_train(torch.cat([batch.user, batch.user]),
                                  torch.cat([batch.item, negatives.sample(batch.user)]))  # [2B]
        positive, negative = out.logits.chunk(2)  # [B], [B]
        return out, bpr_loss(positive, negative)
    out = model.forward_train(batch.user, batch.item)
    return out, F.binary_cross_entropy_with_logits(out.logits, batch.label.float())  # Eq. (24)


@torch.no_grad()
def predict(model: Recommender, rows: Rows) -> np.ndarray:
    """The logit of every row, scored ``pairs_per_call`` rows a call. Each call's scores are
    copied out: a model's output may be a view of its call's temporaries, and a list of those
    views kept every call's temporaries alive (at movie scale 7.7 GB for the 5.4 M validation
    rows, docs/benchmarks.md)."""
    model.eval()
    device = _device(model)
    step = model.pairs_per_call()
    out = torch.empty(len(rows))  # [N]
    for s in range(0, len(rows), step):
        out[s : s + step] = model(rows.user[s : s + step].to(device), rows.item[s : s + step].to(device))
    return out.numpy()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model: Recommender, split: str, rows: Rows, train: Rows, n_items: int, cfg: TrainConfig,
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
            lambda u: model.score_all(u.to(device), all_items).cpu(), users,
            train.user.numpy(), train.item.numpy(),
            rows.user.numpy()[positive], rows.item.numpy()[positive], n_items, cfg.ks,
        ))
    out["seconds"] = time.perf_counter() - start
    return {f"{split}/{k}": v for k, v in out.items()}


def diagnostics(model: Recommender, rows: Rows, sample: int = 4096) -> dict[str, float]:
    """What the model reports about itself (``Recommender.diagnostics``) on a sample of rows
    (at most what one call may score: ``Recommender.pairs_per_call``)."""
    model.eval()
    device = _device(model)
    sample = min(sample, model.pairs_per_call())
    with torch.no_grad():
        return model.diagnostics(rows.user[:sample].to(device), rows.item[:sample].to(device))
