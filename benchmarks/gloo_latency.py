"""Latency of gloo collectives between two local processes, idle and between busy steps.

    python benchmarks/gloo_latency.py

Prints milliseconds per all-reduce and per all-gather (2 processes, 1 torch thread each) for
a few sizes, and the all-gather again when each process computes for 1 or 2 ms between
collectives, as a training step does.
"""

from __future__ import annotations

import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SIZES = (1, 20_000, 100_000, 417_000)
REPEATS = 200


def _worker(rank: int, port: int) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    for size in SIZES:
        x, out = torch.randn(size), torch.empty(2 * size)
        for _ in range(5):
            dist.all_reduce(x)
        start = time.perf_counter()
        for _ in range(REPEATS):
            dist.all_reduce(x)
        reduce_ms = (time.perf_counter() - start) / REPEATS * 1e3
        start = time.perf_counter()
        for _ in range(REPEATS):
            dist.all_gather_single(out, x)
        gather_ms = (time.perf_counter() - start) / REPEATS * 1e3
        if rank == 0:
            print(f"{size:>8} floats, idle: all-reduce {reduce_ms:.3f} ms, all-gather {gather_ms:.3f} ms", flush=True)
    a = torch.randn(200, 200)
    x, out = torch.randn(12_000), torch.empty(24_000)
    for busy_ms in (1, 2):
        waited = 0.0
        for _ in range(REPEATS):
            start = time.perf_counter()
            while time.perf_counter() - start < busy_ms / 1e3:
                a @ a
            start = time.perf_counter()
            dist.all_gather_single(out, x)
            waited += time.perf_counter() - start
        if rank == 0:
            print(f"   12000 floats after {busy_ms} ms of compute: all-gather {waited / REPEATS * 1e3:.3f} ms",
                  flush=True)
    dist.destroy_process_group()


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port,), nprocs=2)


if __name__ == "__main__":
    main()
