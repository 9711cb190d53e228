"""LightGCN on a tiny random graph: shapes, gradients, and its paper's K = 0 equivalence to MF."""

from __future__ import annotations

import numpy as np
import torch
from conftest import tiny_data

from mikgnn.baselines.lightgcn import LightGCN, normalized_adjacency
from mikgnn.config import ModelConfig, for_model
from mikgnn.models import build_model


def test_the_adjacency_is_symmetric_and_normalised():
    adjacency = normalized_adjacency(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 2]), 2, 3).to_dense()
    assert torch.equal(adjacency, adjacency.T)
    # user 0 (degree 2) - item 0 (degree 1): 1/sqrt(2 * 1); the duplicate (1, 1) counts once
    assert torch.isclose(adjacency[0, 2], torch.tensor(2.0 ** -0.5))
    assert torch.isclose(adjacency[1, 3], torch.tensor((2.0 * 2.0) ** -0.5))
    assert adjacency[:2, :2].abs().sum() == 0 and adjacency[2:, 2:].abs().sum() == 0  # bipartite


def test_shapes_and_a_gradient_on_every_parameter():
    data = tiny_data()
    model = build_model(data, for_model(ModelConfig(dim=8), "lightgcn"), seed=0)
    assert isinstance(model, LightGCN) and model.layers == 3
    users, items = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 3, 2, 1])
    out = model.forward_train(users, items)
    assert out.logits.shape == (4,)
    out.logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.score_all(users).shape == (4, data.n_items)


def test_zero_layers_is_matrix_factorisation():
    """LightGCN's Eq. 4 with K = 0 keeps only E^(0): the scores are MF's u · v."""
    data = tiny_data()
    model = build_model(data, for_model(ModelConfig(dim=8, hops=1), "lightgcn"), seed=0)
    model.layers = 0
    users = torch.arange(data.n_users)
    expected = model.user.weight @ model.item.weight.T
    assert torch.allclose(model.score_all(users), expected, atol=1e-6)
