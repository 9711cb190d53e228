"""The data-parallel gradient average: two real gloo processes exchanging only the embedding rows
they used end with exactly the mean of their dense gradients; the overlapped exchange takes
exactly the steps of the mean gradient delayed by one; the full-table L2 added after the
exchange is the gradient of the in-graph L2 term."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import free_port, tiny_data

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.distributed.gradients import OverlappedGradients, average_gradients
from mikgnn.models import build_model
from mikgnn.training import Rows, StepHooks, l2_penalty, make_optimizer, train_epoch

CONFIGS = {
    "mikgnn-h2": ModelConfig(dim=8, n_neighbours=3, hops=2),
    "kgcn": ModelConfig(model="kgcn", attention="relation", aggregator="sum", dim=8, n_neighbours=3),
    "mf": ModelConfig(model="mf", dim=8),
}


def _batch(rank: int, size: int = 12, step: int = 0) -> Rows:
    rows = Rows.from_numpy(tiny_data(n_users=40, n_items=300).splits["train"])
    start = (2 * step + rank) * size
    idx = torch.arange(start, start + size)
    return Rows(rows.user[idx], rows.item[idx], rows.label[idx])


def _data_gradients(cfg: ModelConfig, rank: int):
    model = build_model(tiny_data(n_users=40, n_items=300), cfg, seed=0)
    batch = _batch(rank)
    out = model.forward_train(batch.user, batch.item)
    F.binary_cross_entropy_with_logits(out.logits, batch.label.float()).backward()
    return model, out.touched


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
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(free_port(), cfg, out), nprocs=2)
    model, touched = _data_gradients(cfg, 0)
    table = "item.weight" if cfg.model == "mf" else "entity.weight"
    assert touched[table].numel() < model.get_parameter(table).shape[0]  # the sparse path ran
    for rank in (0, 1):
        assert out[rank].keys() == expected.keys()
        for n, g in expected.items():
            torch.testing.assert_close(out[rank][n], g, rtol=1e-6, atol=1e-7, msg=f"{name} rank {rank} {n}")


OVERLAP_TRAIN = replace(TrainConfig(), lr=1e-2, l2=1e-2, l2_mode="full")
STEPS = 3


def _overlapped_worker(rank: int, port: int, cfg: ModelConfig, out: dict) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = build_model(tiny_data(n_users=40, n_items=300), cfg, seed=0)
    optimizer = make_optimizer(model, OVERLAP_TRAIN)
    overlap = OverlappedGradients(optimizer)
    hooks = StepHooks(after_backward=overlap.after_backward, end_of_epoch=overlap.end_of_epoch)
    train_epoch(model, optimizer, [_batch(rank, step=t) for t in range(STEPS)], OVERLAP_TRAIN, hooks=hooks)
    out[rank] = {n: w.detach().clone() for n, w in model.named_parameters()}
    dist.destroy_process_group()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_overlapped_exchange_steps_on_the_mean_gradient_one_step_late(name):
    cfg = CONFIGS[name]
    model = build_model(tiny_data(n_users=40, n_items=300), cfg, seed=0)
    optimizer = make_optimizer(model, OVERLAP_TRAIN)
    pending = None
    for t in range(STEPS + 1):
        mean = None
        if t < STEPS:  # this step's mean gradient, at the parameters of now
            mean = {}
            for rank in (0, 1):
                batch = _batch(rank, step=t)
                model.zero_grad()
                logits = model(batch.user, batch.item)
                F.binary_cross_entropy_with_logits(logits, batch.label.float()).backward()
                for n, w in model.named_parameters():
                    mean[n] = mean.get(n, 0) + w.grad / 2
        if pending is not None:  # the previous step's mean is applied
            for n, w in model.named_parameters():
                w.grad = pending[n].clone()
            optimizer.step()
        pending = mean
    expected = {n: w.detach() for n, w in model.named_parameters()}
    out = mp.Manager().dict()
    mp.spawn(_overlapped_worker, args=(free_port(), cfg, out), nprocs=2)
    for rank in (0, 1):
        for n, w in expected.items():
            torch.testing.assert_close(out[rank][n], w, rtol=1e-5, atol=1e-6, msg=f"{name} rank {rank} {n}")
    start = build_model(tiny_data(n_users=40, n_items=300), cfg, seed=0)
    assert all(not torch.equal(w, expected[n]) for n, w in start.named_parameters())  # it trained


def test_full_l2_as_weight_decay_takes_the_steps_of_the_l2_term():
    """Adam's weight decay on model.l2_tensors = Adam on loss + λ·½‖w‖² (Eq. 24 with full L2)."""
    cfg = CONFIGS["mikgnn-h2"]
    train = replace(TrainConfig(), lr=1e-2, l2=1e-2, l2_mode="full")
    weights = []
    for in_loss in (True, False):
        model = build_model(tiny_data(n_users=40, n_items=300), cfg, seed=0)
        optimizer = (torch.optim.Adam(model.parameters(), lr=train.lr) if in_loss
                     else make_optimizer(model, train))
        for rank in (0, 1, 0):
            batch = _batch(rank)
            out = model.forward_train(batch.user, batch.item)
            loss = F.binary_cross_entropy_with_logits(out.logits, batch.label.float())
            if in_loss:
                loss = loss + train.l2 * l2_penalty(model, out, train)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        weights.append({n: w.detach().clone() for n, w in model.named_parameters()})
    assert any(w.abs().sum() > 0 for w in weights[0].values())
    for n in weights[0]:
        torch.testing.assert_close(weights[1][n], weights[0][n], rtol=1e-5, atol=1e-6, msg=n)
