"""Local SGD: workers step on their own gradients; their parameters are averaged periodically.

Per-step gradient averaging pays one collective per step. On a small CPU machine its latency
(ms, mostly waking the communication threads of busy processes) exceeds the step itself, so
W workers are slower than one. Averaging the parameters every K steps (Lin et al., "Don't
use large mini-batches, use local SGD", ICLR 2020; PyTorch's PeriodicModelAverager) pays it
once per K steps. Adam's moments stay per worker, as in PyTorch's PostLocalSGDOptimizer.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class ModelAverager:
    def __init__(self, every: int):
        self.every = every
        self.pending = 0  # steps since the last average

    def after_step(self, model: nn.Module) -> None:
        self.pending += 1
        if self.pending >= self.every:
            self.average(model)

    def end_of_epoch(self, model: nn.Module) -> None:
        """Every worker ends an epoch with the same parameters (rank 0 validates and saves them)."""
        if self.pending:
            self.average(model)

    @torch.no_grad()
    def average(self, model: nn.Module) -> None:
        params = list(model.parameters())
        flat = torch.cat([p.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for p in params:
            p.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        self.pending = 0
