"""One iteration's aggregation (SPEC §3): Eq. (16) and KGCN's sum / concat / neighbor.

Each aggregator maps a node c and its neighbourhood vector c_N to c' = σ(x), with σ = ReLU
at every iteration but the last (tanh). The pre-activation x:

    interaction  x = W1 (c + c_N) + W2 (c ⊙ c_N) + b      Eq. (16)
    sum          x = W1 (c + c_N) + b                     KGCN
    concat       x = W1 [c ; c_N] + b                     KGCN
    neighbor     x = W1 c_N + b                           KGCN

transform "learned": W1, W2 and b are trained (the paper and KGCN's code). "identity":
W1 = W2 = I and b = 0, fixed, so the layer has no parameters (as in LightGCN; measured in
docs/model.md). concat maps 2d features to d and has no identity form.

``linear_parts`` serves the score grid (``models.score_grid``): x is linear in the neighbour
weights w_j, x = base + Σ_j w_j part_j, with base [..., d] and part [..., f, d] free of the user.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Aggregator(nn.Module):
    def __init__(self, dim: int, last: bool, learned: bool, in_features: int | None = None,
                 hadamard: bool = False):
        super().__init__()
        self.last, self.learned = last, learned
        # W1 and b; W2 for Eq. (16)'s Hadamard term. nn.Identity: W = I, b = 0.
        self.w1: nn.Module = nn.Linear(in_features or dim, dim) if learned else nn.Identity()
        self.w2: nn.Module = nn.Linear(dim, dim, bias=False) if learned and hadamard else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.learned:
            return
        nn.init.xavier_uniform_(self.w1.weight)
        nn.init.zeros_(self.w1.bias)
        if isinstance(self.w2, nn.Linear):
            nn.init.xavier_uniform_(self.w2.weight)

    def forward(self, center: torch.Tensor, c_n: torch.Tensor) -> torch.Tensor:
        """center [..., d], c_N [..., d] -> c' [..., d]."""
        return self.activate(self.pre_activation(center, c_n))

    def pre_activation(self, center: torch.Tensor, c_n: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def linear_parts(self, center: torch.Tensor, neighbours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """center [..., d], neighbours [..., f, d] -> base [..., d], part [..., f, d]."""
        raise NotImplementedError

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) if self.last else F.relu(x)

    def activate_(self, x: torch.Tensor) -> torch.Tensor:
        """``activate`` in place, for evaluation. tanh(x) = 2 σ(2x) − 1: torch's CPU sigmoid is
        about 4x faster than its tanh, which was a third of the one-hop score grid; the
        result differs from torch.tanh by at most 2e-7."""
        return x.mul_(2).sigmoid_().mul_(2).sub_(1) if self.last else x.relu_()

    def transform_penalty(self) -> torch.Tensor | None:
        """‖W1 + W2‖² of Eq. (24) (‖W1‖² without W2); None for the fixed identity."""
        if not self.learned:
            return None
        w = self.w1.weight + self.w2.weight if isinstance(self.w2, nn.Linear) else self.w1.weight
        return w.pow(2).sum()

    def _project(self, neighbours: torch.Tensor) -> torch.Tensor:
        """W1 e_j without the bias  [..., f, d]."""
        return neighbours @ self.w1.weight.T if self.learned else neighbours


class InteractionAggregator(Aggregator):
    """Eq. (16): MI-KGNN's sum and Hadamard interactions."""

    def __init__(self, dim: int, last: bool, learned: bool):
        super().__init__(dim, last, learned, hadamard=True)

    def pre_activation(self, center, c_n):
        return self.w1(center + c_n) + self.w2(center * c_n)  # Eq. (16)  [..., d]

    def linear_parts(self, center, neighbours):
        part = self._project(neighbours) + self.w2(center.unsqueeze(-2) * neighbours)  # [..., f, d]
        return self.w1(center), part


class SumAggregator(Aggregator):
    def pre_activation(self, center, c_n):
        return self.w1(center + c_n)  # [..., d]

    def linear_parts(self, center, neighbours):
        return self.w1(center), self._project(neighbours)


class ConcatAggregator(Aggregator):
    def __init__(self, dim: int, last: bool, learned: bool):
        if not learned:
            raise ValueError("the concat aggregator maps 2d to d features and has no identity transform")
        super().__init__(dim, last, learned, in_features=2 * dim)

    def pre_activation(self, center, c_n):
        center, c_n = torch.broadcast_tensors(center, c_n)
        return self.w1(torch.cat([center, c_n], dim=-1))  # [..., d]

    def linear_parts(self, center, neighbours):
        d = center.shape[-1]
        w_center, w_neigh = self.w1.weight[:, :d], self.w1.weight[:, d:]
        return center @ w_center.T + self.w1.bias, neighbours @ w_neigh.T


class NeighborAggregator(Aggregator):
    def pre_activation(self, center, c_n):
        return self.w1(c_n).expand(torch.broadcast_shapes(center.shape, c_n.shape))  # [..., d]

    def linear_parts(self, center, neighbours):
        if not self.learned:
            return torch.zeros_like(center), neighbours
        return self.w1.bias.expand_as(center), self.w1(neighbours) - self.w1.bias


AGGREGATOR_CLASSES = {"interaction": InteractionAggregator, "sum": SumAggregator, "concat": ConcatAggregator,
                      "neighbor": NeighborAggregator}


def make_aggregator(kind: str, dim: int, last: bool, transform: str) -> Aggregator:
    return AGGREGATOR_CLASSES[kind](dim, last, transform == "learned")
