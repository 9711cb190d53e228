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


@dataclass
class _Layout:
    """Which gradients a step exchanges and how: sparse tables as rows, the rest densely."""

    sparse: list[_Sparse]
    gathered: list[nn.Parameter]  # dense gradients that ride in the gather
    reduced: list[nn.Parameter]  # dense gradients too big to ride: an all-reduce of their own


def _layout(model: nn.Module, touched: dict[str, torch.Tensor], gather_all: bool = False) -> _Layout:
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
    if gather_all or (sparse and sum(p.numel() for p in dense) <= payload):
        return _Layout(sparse, dense, [])
    return _Layout(sparse, [], dense)


def average_gradients(model: nn.Module, touched: dict[str, torch.Tensor]) -> None:
    """Replace every gradient by its mean over the workers of the default process group.

    ``touched`` maps a parameter name (``"entity.weight"``) to the row ids the step looked up
    (repeats allowed); rows outside them must have a zero gradient on this worker.
    """
    world = dist.get_world_size()
    layout = _layout(model, touched)
    if layout.reduced:
        _all_reduce_mean(layout.reduced, world)
    if layout.sparse or layout.gathered:  # small dense parameters ride along: one collective, not two
        send = _pack(layout)
        flat = send.new_empty(world * send.numel())
        dist.all_gather_single(flat, send)
        _unpack(flat.view(world, -1), layout, dist.get_rank())


class OverlappedGradients:
    """Gradient averaging that overlaps the exchange with the next step's computation.

    Step t sends its gradients without waiting, and then steps the optimizer on the mean of
    step t-1's, whose exchange ran while step t computed: every gradient is applied once,
    one step late (a delay of one, as in pipelined data parallelism). The first step of an
    epoch only sends; ``end_of_epoch`` applies the last one, so every worker ends an epoch
    with the same parameters after as many optimizer steps as synchronous averaging takes.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.pending: tuple[dist.Work, torch.Tensor, _Layout] | None = None

    def after_backward(self, model: nn.Module, touched: dict[str, torch.Tensor]) -> None:
        layout = _layout(model, touched, gather_all=True)
        send = _pack(layout)
        flat = send.new_empty(dist.get_world_size() * send.numel())
        work = dist.all_gather_single(flat, send, async_op=True)
        previous, self.pending = self.pending, (work, flat, layout)
        self._apply(model, previous)

    def end_of_epoch(self, model: nn.Module) -> None:
        if self.pending is not None:
            previous, self.pending = self.pending, None
            self._apply(model, previous)
            self.optimizer.step()

    @staticmethod
    def _apply(model: nn.Module, pending: tuple[dist.Work, torch.Tensor, _Layout] | None) -> None:
        """Make the gradients those of ``pending``: none at all when nothing is pending, so
        the optimizer skips the step."""
        for param in model.parameters():
            param.grad = None
        if pending is None:
            return
        work, flat, layout = pending
        work.wait()
        for t in layout.sparse:
            t.param.grad = torch.zeros_like(t.param)
        for param in layout.gathered:
            param.grad = torch.empty_like(param)
        _unpack(flat.view(dist.get_world_size(), -1), layout, me=None)


def _all_reduce_mean(params: list[nn.Parameter], world: int) -> None:
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset : offset + p.grad.numel()].view_as(p.grad))
        offset += p.grad.numel()


def _pack(layout: _Layout) -> torch.Tensor:
    pieces = []
    for t in layout.sparse:
        grad, r = t.param.grad, t.rows.numel()
        ids = torch.zeros(t.capacity, dtype=torch.int32, device=grad.device)
        ids[:r] = t.rows.to(torch.int32)
        values = grad.new_zeros(t.capacity, grad.shape[1])  # [capacity, d]
        values[:r] = grad[t.rows]
        count = torch.tensor([r], dtype=torch.int32, device=grad.device)
        pieces += [count.view(torch.float32), ids.view(torch.float32), values.reshape(-1)]
    pieces += [p.grad.reshape(-1) for p in layout.gathered]
    return torch.cat(pieces)


def _unpack(gathered: torch.Tensor, layout: _Layout, me: int | None) -> None:
    """Write the mean of the gathered gradients [W, size] into the parameters' gradients.

    me = this worker's rank: its own rows are already in its gradients, and are only scaled
    to their share. me = None: every worker's rows are added, to gradients that start at zero.
    """
    world, size = gathered.shape
    tail = sum(p.numel() for p in layout.gathered)
    if tail:
        mean = gathered[:, size - tail :].sum(0) / world  # [tail]
        offset = 0
        for p in layout.gathered:
            p.grad.copy_(mean[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()
    if me is not None:
        for t in layout.sparse:
            t.param.grad[t.rows] /= world
    for w in range(world):
        if w == me:
            continue
        offset = 0
        for t in layout.sparse:
            grad, d = t.param.grad, t.param.grad.shape[1]
            r = int(gathered[w, offset : offset + 1].view(torch.int32))
            ids = gathered[w, offset + 1 : offset + 1 + r].view(torch.int32).long()
            start = offset + 1 + t.capacity
            values = gathered[w, start : start + r * d].view(r, d)
            grad.index_add_(0, ids, values, alpha=1.0 / world)
            offset = start + t.capacity * d
