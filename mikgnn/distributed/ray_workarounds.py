"""Every use of Ray's internals, and every workaround of a Ray behaviour, in one place (Ray 2.60.0).

Each function works around a behaviour of Ray (most of them through what its public API does
not reach), says which, and names the test that fails without it. Nothing else in the project imports ``ray._private``,
a ``ray.*._internal`` module or an underscore name of Ray (``tests/test_ray_workarounds.py``
checks). When a Ray release offers a public way, the function goes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import ray
from ray._private import ray_constants
from ray.train._internal.worker_group import WorkerGroup as V1WorkerGroup
from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _setup_torch_process_group, _TorchBackend

# Ray's switch for a node whose address is the loopback (its default on macOS and Windows).
LOOPBACK_NODE_ENV = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
LOOPBACK = "127.0.0.1"
_STORES: list = []  # rank 0's rendezvous store, held for as long as its worker lives


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """A local cluster that listens on the loopback only.

    Ray 2.60.0 on Linux takes the machine's outward address as the node's, and its GCS, raylet,
    worker, agent and Prometheus metrics servers then listen on every interface, without
    authentication. With clusters "disabled" (what Ray does on macOS and Windows) the node's
    address is 127.0.0.1 and every one of them binds there; ``ray.init(_node_ip_address=
    "127.0.0.1")`` does not do it, Ray turns that address back into the outward one. The
    driver reads the switch as a constant, the processes it starts (GCS, raylet, agents, and
    through the raylet every worker) from their environment; both are restored afterwards, so
    that a later ``ray start`` of this process can still join a cluster of several machines.
    Test: ``test_tune.py::test_a_local_run_listens_on_the_loopback_only``.
    """
    before_env, before = os.environ.get(LOOPBACK_NODE_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_NODE_ENV], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(LOOPBACK_NODE_ENV, None)
        else:
            os.environ[LOOPBACK_NODE_ENV] = before_env


@contextlib.contextmanager
def sigint_kept() -> Iterator[None]:
    """Around ``Tuner.fit`` and ``TorchTrainer.fit``: the SIGINT handler of before is put back.

    Ray 2.60.0's Tune (``tune.run``'s signal catching) and Train (``DataParallelTrainer.fit``)
    install their own SIGINT handler and leave it behind when the run returns (Tune restores the
    old one only after a first signal). A later Ctrl-C or SIGTERM (``cluster.connect``: SIGTERM
    takes Ctrl-C's path), while a pipeline logs its best model or starts its next grid, then
    only set the flag of a run that no one reads any more. Test:
    ``tests/test_cluster.py::test_a_sigterm_after_connect_is_a_ctrl_c_before_and_after_a_search``."""
    before = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, before)


@contextlib.contextmanager
def ray_data_errors_unlogged() -> Iterator[None]:
    """Around gathering a Ray Data dataset whose tasks raise the user's input errors.

    Ray Data 2.60.0 logs a failed task's error with its traceback (logger ``ray.data``) before it
    raises it, so a bad line of a user's file printed a traceback above our one error line.
    Test: ``test_refused.py::test_bad_data_found_by_a_ray_data_task_is_one_line_too``."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def without_retry_advice(message: str) -> str:
    """A task error's message without the advice Ray Data 2.60.0 appends to it ("Failed to apply
    UDF transform after 1/1 attempts ... configure DataContext ..."), even with
    ``raise_original_map_exception``: bad input is not transient.
    Test: ``test_refused.py::test_bad_data_found_by_a_ray_data_task_is_one_line_too``."""
    return message.split("\nFailed to ", 1)[0]


def set_dashboard_start_s(seconds: int) -> None:
    """Give the dashboard ``seconds`` to start. Ray 2.60.0 reads RAY_DASHBOARD_STARTUP_TIMEOUT_S
    (60 s) once, when ``ray`` is imported, so setting the variable later does nothing.
    Test: ``test_cluster.py::test_the_dashboard_gets_longer_than_rays_60_s_unless_the_user_says``."""
    ray_constants.RAY_DASHBOARD_STARTUP_TIMEOUT_S = seconds


def dashboard_start_s() -> int:
    return ray_constants.RAY_DASHBOARD_STARTUP_TIMEOUT_S


def autoscaler_names_node_types() -> bool:
    """Whether the autoscaler's report in the GCS names a node type of a config (cluster.yaml's
    "head", "gpu_worker"), where a cluster without one (a local Ray, nodes started by hand)
    runs Ray's read-only monitor, whose types are its nodes' ids. Ray 2.60.0 has no public
    call that tells an autoscaling cluster from a fixed one (v1 autoscaler).
    Test: ``test_autoscaling.py``."""
    from ray.autoscaler._private.util import format_readonly_node_type
    from ray.experimental.internal_kv import _internal_kv_get

    status = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
    report = (json.loads(status).get("autoscaler_report") or {}) if status is not None else {}
    types = (report.get("node_type_mapping") or {}).items()
    return any(kind != format_readonly_node_type(node) for node, kind in types)


LIVE_STATES = ("PENDING", "PREPARED", "CREATED", "RESCHEDULING")
NIL_ACTOR = b"\xff"


@dataclass(frozen=True)
class GroupRecord:
    """What the GCS knows of one placement group."""

    id: str
    state: str
    bundles: tuple[dict, ...]
    creator_actor: str | None  # hex; None when a driver created it
    creator_actor_dead: bool

    @property
    def orphaned(self) -> bool:
        return self.creator_actor is not None and self.creator_actor_dead and self.state in LIVE_STATES


def placement_group_records(job_id: str) -> list[GroupRecord]:
    """The placement groups of the job ``job_id`` (hex), live or not, from the GCS table: Ray
    2.60.0's public ``placement_group_table()`` leaves out the creator actor, the one fact that
    tells a leaked worker-group placement group from a live one (``placement.py``).
    Test: ``test_ray_workarounds.py::test_a_group_whose_creator_died_is_an_orphan_and_is_removed``."""
    from ray.core.generated import gcs_pb2

    table = gcs_pb2.PlacementGroupTableData
    accessor = ray._private.state.state._connect_and_get_accessor()
    out = []
    for raw in accessor.get_placement_group_table():
        data = table.FromString(raw)
        pg_id = data.placement_group_id.hex()
        if not pg_id.endswith(job_id):
            continue
        creator = data.creator_actor_id
        out.append(GroupRecord(
            id=pg_id, state=table.PlacementGroupState.Name(data.state),
            bundles=tuple(dict(b.unit_resources) for b in data.bundles),
            creator_actor=None if not creator or set(creator) <= set(NIL_ACTOR) else creator.hex(),
            creator_actor_dead=data.creator_actor_dead))
    return out


def trial_actor(trial) -> ray.actor.ActorHandle | None:
    """The actor that runs a Tune trial, None when none does: Ray 2.60.0's ``Trial`` keeps it in
    ``temporary_state``, and Tune has no public way to kill one stalled trial (the watchdog).
    Test: ``test_ray_workarounds.py::test_a_trial_that_never_started_has_no_actor``."""
    return trial.temporary_state.ray_actor


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
class LoopbackTorchConfig(TorchConfig):
    """Ray Train's torch process group, kept on the loopback when the cluster is this machine
    alone; ``backend`` must be named (gloo on CPU, nccl on GPU).

    Ray 2.60.0 starts the group's rendezvous store (torch's ``TCPStore``) on rank 0, and torch
    binds that store to every interface, whatever address the workers then connect to; gloo
    and NCCL pick an interface of their own, the machine's outward one where the host name
    resolves to it. On a local cluster (node address 127.0.0.1, ``loopback_node``) the store
    is started here instead, on a socket bound to 127.0.0.1, and gloo and NCCL are pointed at
    the loopback interface, so that a run listens on nothing another machine can reach.
    Workers on a cluster of several machines take Ray's own set-up unchanged.
    Test: ``test_tune.py::test_a_local_run_listens_on_the_loopback_only`` (2 workers a trial).
    """

    @property
    def backend_cls(self):
        return _LoopbackTorchBackend
