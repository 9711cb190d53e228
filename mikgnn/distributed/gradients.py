"""Averaging gradients across data-parallel workers, exchanging only the embedding rows a step used.

A step of a KG recommender touches a few hundred rows of tables with thousands to millions of
rows; a dense all-reduce would ship every row on every step. For each embedding table whose
rows used by the step (``touched``) are fewer than its rows, a worker sends the ids and the
gradients of the distinct rows it used, and every worker adds up what the others sent. The
other parameters (small tables, the aggregation weights) travel densely: in the same gather
when they are smaller than the rows, else in an all-reduce.

The full-table L2 term is not part of these gradients: it is the same on every worker and is
the optimizer's weight decay, applied after the exchange (``training.make_optimizer``), so it
needs no communication.

Wire format of the gathered buffer, per sparse table: one count, ``capacity`` row ids (int32
bit patterns carried in float32 slots; a gather does no arithmetic on them) and ``capacity`` rows
of gradients; capacity = the number of lookups of the step, identical on every worker because
every worker steps on equally sized batches. Then the small dense gradients, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class _Sparse:
    param: nn.Parameter
    rows: torch.Tensor  # [r] distinct rows this worker used
    capacity: int


def average_gradients(model: nn.Module, touched: dict[str, torch.Tensor]) -> None:
    """Replace every gradient by its mean over the workers of the default process group.

    ``touched`` maps a parameter name (``"entity.weight"``) to the row ids the step looked up
    (repeats allowed); rows outside them must have a zero gradient on this worker.
    """
    world = dist.get_world_size()
    sparse: list[_Sparse] = []
    dense: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        ids = touched.get(name)
        if ids is not None and ids.numel() < param.shape[0]:
            sparse.append(_Sparse(param, torch.unique(ids), ids.numel()))
        else:
            dense.append(param)
    payload = sum(t.capacity * (t.param.shape[1] + 1) + 1 for t in sparse)
    small = [] if not sparse or sum(p.numel() for p in dense) > payload else dense
    if dense and not small:
        _all_reduce_mean(dense, world)
    if sparse:  # small dense parameters ride along: one collective per step, not two
        _exchange_rows(sparse, small, world)


def _all_reduce_mean(params: list[nn.Parameter], world: int) -> None:
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset : offset + p.grad.numel()].view_as(p.grad))
        offset += p.grad.numel()


def _exchange_rows(tables: list[_Sparse], dense: list[nn.Parameter], world: int) -> None:
    pieces = []
    for t in tables:
        grad, r = t.param.grad, t.rows.numel()
        ids = torch.zeros(t.capacity, dtype=torch.int32, device=grad.device)
        ids[:r] = t.rows.to(torch.int32)
        values = grad.new_zeros(t.capacity, grad.shape[1])  # [capacity, d]
        values[:r] = grad[t.rows]
        count = torch.tensor([r], dtype=torch.int32, device=grad.device)
        pieces += [count.view(torch.float32), ids.view(torch.float32), values.reshape(-1)]
    pieces += [p.grad.reshape(-1) for p in dense]
    send = torch.cat(pieces)
    flat = send.new_empty(world * send.numel())
    dist.all_gather_single(flat, send)
    gathered = flat.view(world, send.numel())  # [W, size]
    me = dist.get_rank()
    tail = sum(p.numel() for p in dense)
    if tail:
        mean = gathered[:, send.numel() - tail :].sum(0) / world  # [tail]
        offset = 0
        for p in dense:
            p.grad.copy_(mean[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()
    for t in tables:  # this worker's own rows first: scaled in place to their share of the mean
        t.param.grad[t.rows] /= world
    for w in range(world):
        if w == me:
            continue
        offset = 0
        for t in tables:
            grad, d = t.param.grad, t.param.grad.shape[1]
            r = int(gathered[w, offset : offset + 1].view(torch.int32))
            ids = gathered[w, offset + 1 : offset + 1 + r].view(torch.int32).long()
            start = offset + 1 + t.capacity
            values = gathered[w, start : start + r * d].view(r, d)
            grad.index_add_(0, ids, values, alpha=1.0 / world)
            offset = start + t.capacity * d
