"""What a data-parallel step pays beyond the model, outside Ray: W local processes (gloo,
1 torch thread each) each train on 1/W of the train split with the per-worker batch of
Table 1, under four exchanges:

    none      no exchange at all: independent halves, the bound on any speed-up
    local     the overlapped exchange's packing and unpacking, with the gather replaced by
              a local copy: what the bookkeeping costs without communication
    sync      average_gradients, every step (the default of pipelines/train.py --workers)
    overlap   OverlappedGradients (--overlap)

    python benchmarks/exchange_cost.py --dataset music
    python benchmarks/exchange_cost.py --dataset movie1m --epochs 2

Prints the median seconds of an epoch (epochs after the first) per exchange, with 1 process
and no exchange as the base.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mikgnn.config import table1  # noqa: E402
from mikgnn.distributed import gradients  # noqa: E402
from mikgnn.experiment import build  # noqa: E402
from mikgnn.processed import load_processed  # noqa: E402
from mikgnn.training import Rows, StepHooks, shuffled_batches, train_epoch  # noqa: E402

EXCHANGES = ("none", "local", "sync", "overlap")


class _Done:
    def wait(self) -> None:
        return None


def _local_gather(world: int):
    def gather(out: torch.Tensor, send: torch.Tensor, async_op: bool = False) -> _Done:
        out.view(world, -1).copy_(send.unsqueeze(0).expand(world, -1))
        return _Done()
    return gather


def _hooks(exchange: str, world: int, optimizer) -> StepHooks | None:
    if exchange == "none":
        return None
    if exchange == "sync":
        return StepHooks(after_backward=gradients.average_gradients)
    if exchange == "local":
        gradients.dist.all_gather_single = _local_gather(world)
    overlapped = gradients.OverlappedGradients(optimizer)
    return StepHooks(after_backward=overlapped.after_backward, end_of_epoch=overlapped.end_of_epoch)


def _worker(rank: int, world: int, port: int, args, exchange: str, out: dict) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    t = table1(args.dataset)
    exp = build(load_processed(args.processed, splits=("train",)), t.model, t.train)
    rows, share = exp.splits["train"], len(exp.splits["train"]) // world
    part = slice(rank * share, (rank + 1) * share)
    shard = Rows(rows.user[part], rows.item[part], rows.label[part])
    hooks = _hooks(exchange, world, exp.optimizer)
    generator = torch.Generator().manual_seed(rank)
    seconds = [train_epoch(exp.model, exp.optimizer, shuffled_batches(shard, t.train.batch_size, generator),
                           t.train, hooks=hooks)["seconds"] for _ in range(args.epochs + 1)]
    out[rank] = seconds[1:]
    dist.destroy_process_group()


def _measure(args, world: int, exchange: str) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(world, port, args, exchange, out), nprocs=world)
    return statistics.median(max(out[r][e] for r in range(world)) for e in range(args.epochs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--processed", type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4, help="measured epochs, after one warm-up epoch")
    args = p.parse_args()
    args.processed = args.processed or Path("processed") / f"{args.dataset}-seed0"
    base = _measure(args, 1, "none")
    result = {"dataset": args.dataset, "workers": args.workers,
              "batch_per_worker": table1(args.dataset).train.batch_size, "1 process, epoch_s": round(base, 3)}
    for exchange in EXCHANGES:
        s = _measure(args, args.workers, exchange)
        result[exchange] = {"epoch_s": round(s, 3), "speedup": round(base / s, 2)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
