"""Ray Train's torch process group, kept on the loopback when the cluster is this machine alone.

Ray Train starts the group's rendezvous store (torch's ``TCPStore``) on rank 0, and torch binds
that store to every interface, whatever address the workers then connect to; gloo and NCCL pick
an interface of their own, the machine's outward one where the host name resolves to it. On a
local cluster (node address 127.0.0.1, ``cluster.connect``) the store is started here instead,
on a socket bound to 127.0.0.1, and gloo and NCCL are pointed at the loopback interface, so
that a run listens on nothing another machine can reach. Workers on a cluster of several
machines take Ray's own set-up unchanged.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import ray
from ray.train._internal.worker_group import WorkerGroup as V1WorkerGroup
from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _setup_torch_process_group, _TorchBackend

LOOPBACK = "127.0.0.1"
_STORES: list = []  # rank 0's rendezvous store, held for as long as its worker lives


def _on_loopback() -> bool:
    return ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback


def _serve_store(world_size: int, timeout_s: int) -> int:
    """Rank 0: a rendezvous store listening on the loopback only; returns its port. It is
    multi-tenant, so the store that torch's ``env://`` rendezvous opens on the same port in
    this process is this one, not a second server on every interface."""
    import torch.distributed as dist

    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen()
    port = listener.getsockname()[1]
    _STORES.append(dist.TCPStore(LOOPBACK, port, world_size, True, timedelta(seconds=timeout_s),
                                 wait_for_workers=False, multi_tenant=True, master_listen_fd=listener.detach()))
    return port


def _use_loopback(port: int) -> None:
    os.environ.update(MASTER_ADDR=LOOPBACK, MASTER_PORT=str(port))
    interface = next((name for _, name in socket.if_nameindex() if name.startswith("lo")), None)
    if interface:  # "lo" on Linux, "lo0" on macOS
        for variable in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
            os.environ.setdefault(variable, interface)


class _LoopbackTorchBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config: TorchConfig) -> None:
        if not all(worker_group.execute(_on_loopback)):
            super().on_start(worker_group, backend_config)
            return
        size, timeout_s = len(worker_group), backend_config.timeout_s
        port = worker_group.execute_single(0, _serve_store, world_size=size, timeout_s=timeout_s)
        worker_group.execute(_use_loopback, port=port)
        if not isinstance(worker_group, V1WorkerGroup):
            worker_group.execute(_set_torch_distributed_env_vars)
        ray.get([worker_group.execute_single_async(rank, _setup_torch_process_group, backend=backend_config.backend,
                                                   world_rank=rank, world_size=size, init_method="env://",
                                                   timeout_s=timeout_s)
                 for rank in range(size)])


@dataclass
class ProcessGroupConfig(TorchConfig):
    """``TorchConfig`` whose group stays on the loopback on a local cluster; ``backend`` must
    be named (gloo on CPU, nccl on GPU)."""

    @property
    def backend_cls(self):
        return _LoopbackTorchBackend
