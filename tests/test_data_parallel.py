"""Data-parallel steps as the Train workers take them (``train_loop.data_parallel``), in two real
gloo processes: DDP steps every worker on the mean of their gradients, exactly the step one
process takes on that mean; local SGD steps each worker alone and averages the parameters every
K steps and at the end of the epoch. The full-table L2 as the optimizer's weight decay is the
gradient of the in-graph L2 term."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import free_port, tiny_data
from torch.nn.parallel import DistributedDataParallel

from mikgnn.config import ModelConfig, ParallelConfig, TrainConfig
from mikgnn.distributed.session import DDP_OPTIONS
from mikgnn.distributed.train_loop import data_parallel
from mikgnn.experiment import build
from mikgnn.training import Rows, StepLoss, l2_penalty, make_optimizer, train_epoch

CONFIGS = {
    "mikgnn-h2": ModelConfig(dim=8, n_neighbours=3, hops=2),
    "kgcn": ModelConfig(model="kgcn", attention="relation", aggregator="sum", dim=8, n_neighbours=3),
    "uniform-attention": ModelConfig(attention="uniform", dim=8, n_neighbours=3),  # relation table unused
    "mf": ModelConfig(model="mf", dim=8),
}
TRAIN = replace(TrainConfig(), lr=1e-2, l2=1e-2, l2_mode="full")
STEPS = 5


def _batch(rank: int, step: int, size: int = 12) -> Rows:
    rows = Rows.from_numpy(tiny_data(n_users=40, n_items=300).splits["train"])
    start = (2 * step + rank) * size
    idx = torch.arange(start, start + size)
    return Rows(rows.user[idx], rows.item[idx], rows.label[idx])


def _experiment(cfg: ModelConfig):
    return build(tiny_data(n_users=40, n_items=300), cfg, TRAIN, device="cpu")


class _Worker:
    """The part of a Train worker's session that ``data_parallel`` reads, over a plain gloo group."""

    world = 2

    def prepare(self, module):
        return DistributedDataParallel(module, **DDP_OPTIONS)


def _worker(rank: int, port: int, cfg: ModelConfig, parallel: ParallelConfig, out: dict) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    exp = _experiment(cfg)
    step = data_parallel(exp, TRAIN, parallel, _Worker())
    train_epoch(exp.model, exp.optimizer, [_batch(rank, t) for t in range(STEPS)], TRAIN, parallel=step)
    out[rank] = {n: w.detach().clone() for n, w in exp.model.named_parameters()}
    dist.destroy_process_group()


def _run_workers(cfg: ModelConfig, parallel: ParallelConfig) -> dict:
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(free_port(), cfg, parallel, out), nprocs=2)
    return dict(out)


def _gradients(exp, batch: Rows) -> dict[str, torch.Tensor | None]:
    exp.model.zero_grad(set_to_none=True)
    StepLoss(exp.model, TRAIN)(batch.user, batch.item, batch.label).backward()
    return {n: w.grad for n, w in exp.model.named_parameters()}


def _assert_weights(out: dict, expected: dict, name: str) -> None:
    for rank in (0, 1):
        for n, w in expected.items():
            torch.testing.assert_close(out[rank][n], w, rtol=1e-5, atol=1e-6, msg=f"{name} rank {rank} {n}")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_ddp_takes_the_one_process_step_on_the_mean_gradient(name):
    exp = _experiment(CONFIGS[name])
    for t in range(STEPS):
        per_rank = [_gradients(exp, _batch(rank, t)) for rank in (0, 1)]
        for n, w in exp.model.named_parameters():
            grads = [g[n] for g in per_rank]
            w.grad = None if grads[0] is None else (grads[0] + grads[1]) / 2
        exp.optimizer.step()
    expected = {n: w.detach().clone() for n, w in exp.model.named_parameters()}
    _assert_weights(_run_workers(CONFIGS[name], ParallelConfig()), expected, name)
    start = _experiment(CONFIGS[name]).model
    moved = [n for n, w in start.named_parameters() if not torch.equal(w, expected[n])]
    assert moved and (name != "uniform-attention" or "relation.weight" not in moved)


def test_local_sgd_averages_the_parameters_every_k_steps_and_at_the_end_of_the_epoch():
    cfg, every = CONFIGS["mikgnn-h2"], 3  # step 4 (the last) is averaged only by the end of the epoch
    workers = [_experiment(cfg) for _ in (0, 1)]  # each its own Adam moments

    def average():
        with torch.no_grad():
            for pair in zip(*(exp.model.parameters() for exp in workers), strict=True):
                mean = (pair[0] + pair[1]) / 2
                for w in pair:
                    w.copy_(mean)

    for t in range(STEPS):
        for rank, exp in enumerate(workers):
            exp.model.zero_grad(set_to_none=True)
            _gradients(exp, _batch(rank, t))
            exp.optimizer.step()
        if t % every == 0:  # torch's PeriodicModelAverager: after steps 0, K, 2K, ...
            average()
    average()
    expected = {n: w.detach().clone() for n, w in workers[0].model.named_parameters()}
    _assert_weights(_run_workers(cfg, ParallelConfig(sync_every=every)), expected, "local SGD")
    alone = _experiment(cfg)
    for t in range(STEPS):
        _gradients(alone, _batch(0, t))
        alone.optimizer.step()
    assert any(not torch.allclose(w, expected[n]) for n, w in alone.model.named_parameters())


def test_full_l2_as_weight_decay_takes_the_steps_of_the_l2_term():
    """Adam's weight decay on model.l2_tensors = Adam on loss + λ·½‖w‖² (Eq. 24 with full L2)."""
    weights = []
    for in_loss in (True, False):
        model = _experiment(CONFIGS["mikgnn-h2"]).model
        optimizer = torch.optim.Adam(model.parameters(), lr=TRAIN.lr) if in_loss else make_optimizer(model, TRAIN)
        for rank in (0, 1, 0):
            batch = _batch(rank, 0)
            out = model.forward_train(batch.user, batch.item)
            loss = F.binary_cross_entropy_with_logits(out.logits, batch.label.float())
            if in_loss:
                loss = loss + TRAIN.l2 * l2_penalty(model, out, TRAIN)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        weights.append({n: w.detach().clone() for n, w in model.named_parameters()})
    assert any(w.abs().sum() > 0 for w in weights[0].values())
    for n in weights[0]:
        torch.testing.assert_close(weights[1][n], weights[0][n], rtol=1e-5, atol=1e-6, msg=n)
