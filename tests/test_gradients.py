"""The data-parallel gradient average: two real gloo processes exchanging only the embedding rows
they used end with exactly the mean of their dense gradients; the full-table L2 added after
the exchange is the gradient of the in-graph L2 term."""

from __future__ import annotations

import os
import socket
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from test_model import tiny_data

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.distributed.gradients import average_gradients
from mikgnn.experiment import build_model
from mikgnn.training import Rows, l2_penalty, make_optimizer, touched_rows

CONFIGS = {
    "mikgnn-h2": ModelConfig(dim=8, n_neighbours=3, hops=2),
    "kgcn": ModelConfig(model="kgcn", attention="relation", aggregator="sum", dim=8, n_neighbours=3),
    "mf": ModelConfig(model="mf", dim=8),
}


def _batch(rank: int, size: int = 12) -> Rows:
    rows = Rows.from_numpy(tiny_data(n_users=40, n_items=300).splits["train"])
    idx = torch.arange(rank * size, (rank + 1) * size)
    return Rows(rows.user[idx], rows.item[idx], rows.label[idx])


def _data_gradients(cfg: ModelConfig, rank: int):
    model = build_model(tiny_data(n_users=40, n_items=300), cfg, seed=0)
    batch = _batch(rank)
    p = model.propagate(batch.user, batch.item)
    F.binary_cross_entropy_with_logits((p.user * p.item).sum(-1), batch.label.float()).backward()
    return model, touched_rows(batch, p)


def _worker(rank: int, port: int, cfg: ModelConfig, out: dict) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model, touched = _data_gradients(cfg, rank)
    average_gradients(model, touched)
    out[rank] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    dist.destroy_process_group()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_row_exchange_equals_the_dense_mean(name):
    cfg = CONFIGS[name]
    expected = {}
    for rank in (0, 1):
        model, _ = _data_gradients(cfg, rank)
        for n, p in model.named_parameters():
            if p.grad is not None:
                expected[n] = expected.get(n, 0) + p.grad / 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(port, cfg, out), nprocs=2)
    model, touched = _data_gradients(cfg, 0)
    assert touched["entity.weight"].numel() < model.entity.weight.shape[0]  # the sparse path ran
    for rank in (0, 1):
        assert out[rank].keys() == expected.keys()
        for n, g in expected.items():
            torch.testing.assert_close(out[rank][n], g, rtol=1e-6, atol=1e-7, msg=f"{name} rank {rank} {n}")


def test_full_l2_as_weight_decay_takes_the_steps_of_the_l2_term():
    """Adam's weight decay on full_l2_tensors = Adam on loss + λ·½‖w‖² (Eq. 24 with full L2)."""
    cfg = CONFIGS["mikgnn-h2"]
    train = replace(TrainConfig(), lr=1e-2, l2=1e-2, l2_mode="full")
    weights = []
    for in_loss in (True, False):
        model = build_model(tiny_data(n_users=40, n_items=300), cfg, seed=0)
        optimizer = (torch.optim.Adam(model.parameters(), lr=train.lr) if in_loss
                     else make_optimizer(model, train))
        for rank in (0, 1, 0):
            batch = _batch(rank)
            p = model.propagate(batch.user, batch.item)
            loss = F.binary_cross_entropy_with_logits((p.user * p.item).sum(-1), batch.label.float())
            if in_loss:
                loss = loss + train.l2 * l2_penalty(model, p, train)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        weights.append({n: w.detach().clone() for n, w in model.named_parameters()})
    assert any(w.abs().sum() > 0 for w in weights[0].values())
    for n in weights[0]:
        torch.testing.assert_close(weights[1][n], weights[0][n], rtol=1e-5, atol=1e-6, msg=n)
