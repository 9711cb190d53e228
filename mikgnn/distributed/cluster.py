"""Connecting to Ray: an existing cluster when one is named, else a local one sized to be safe.

On a small machine Ray Data reads, Train workers and Tune trial drivers compete for CPUs; a
read that waits for a whole free CPU can then wait forever. A local cluster therefore
advertises more logical CPUs than cores (at least 4), the trial drivers ask for a fraction
of one (``TRIAL_DRIVER_CPU``), and ``plan_concurrency`` keeps one CPU free for Ray Data and
refuses, before anything is scheduled, a run the cluster cannot hold.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ray

from mikgnn.distributed.errors import ClusterStartError, error_line
from mikgnn.distributed.ray_workarounds import dashboard_start_s, loopback_node, set_dashboard_start_s

MIN_LOCAL_LOGICAL_CPUS = 4
TRIAL_DRIVER_CPU = 0.25  # a Tune trial that drives a TorchTrainer: it waits, it does not compute
DATA_CPUS = 1.0  # kept free for Ray Data reads
# Ray Train's controller collects each worker's report every this many seconds, and a worker's
# second report of an epoch waits for that (a queue of one). Ray's default of 2 s cost every
# trial up to 2 s per epoch, more than a music epoch itself.
TRAIN_POLL_ENV, TRAIN_POLL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"
# Ray gives its dashboard 60 s to start, then fails ray.init. On 2 cores busy with a test suite
# and six training processes it took longer (a reproduction died with Ray's traceback); a
# dashboard that dies still fails at once. RAY_DASHBOARD_STARTUP_TIMEOUT_S, when set, wins.
DASHBOARD_ENV, DASHBOARD_START_S = "RAY_DASHBOARD_STARTUP_TIMEOUT_S", 300
PROBE_S = 10.0  # how long a named cluster's address may take to accept a connection
JOIN_S = 120.0  # how long joining a named cluster may take in all


def local_logical_cpus() -> int:
    return max(os.cpu_count() or 1, MIN_LOCAL_LOGICAL_CPUS)


def connect(address: str | None = None, quiet: bool = True) -> None:
    """Join ``address`` (or $RAY_ADDRESS) when given, else start a local Ray; then a SIGTERM to
    this process is a Ctrl-C (``sigterm_as_interrupt``). ClusterStartError when Ray fails."""
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        _init(address, quiet)
    sigterm_as_interrupt()


def sigterm_as_interrupt() -> None:
    """Make SIGTERM (``timeout``, ``kill PID``, a batch scheduler's end of a job) take the path of
    Ctrl-C, so that a job ends its runs in MLflow as interrupted and can be resumed.

    After ``ray.init`` a SIGTERM aborts the driver (Ray's fatal-signal handler: "SIGTERM
    received", exit by SIGABRT) with no ``finally`` run, which left a search's and its trials'
    MLflow runs RUNNING forever. This handler calls
    whatever handles SIGINT at that moment instead: Tune's own during ``Tuner.fit`` (it stops
    the trials and returns, the first time; a second signal aborts), else Python's, which
    raises KeyboardInterrupt. Signals are only handled in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):  # SIG_DFL / SIG_IGN, or one set outside Python
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    signal.signal(signal.SIGTERM, interrupt)


def _init(address: str | None, quiet: bool) -> None:
    address = address or os.environ.get("RAY_ADDRESS")
    runtime_env = {"env_vars": {TRAIN_POLL_ENV: os.environ.get(TRAIN_POLL_ENV, TRAIN_POLL_S)}}
    if address:
        # A cluster started by ray.init()/ray start uses token auth; its token is in ~/.ray.
        if "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").is_file():
            os.environ["RAY_AUTH_MODE"] = "token"
        # A cluster reached at a loopback address is a loopback node (one that connect() started
        # in another process): Ray would otherwise turn 127.0.0.1 into this machine's outward
        # address, where that cluster does not listen, and wait for it forever.
        _probe(address)
        try:
            with loopback_node() if _is_loopback(address) else contextlib.nullcontext(), bounded_join(address):
                ray.init(address=address, log_to_driver=not quiet, runtime_env=runtime_env)
        except Exception as exc:
            raise ClusterStartError(f"could not join the Ray cluster at {address}: {error_line(exc, 400)}") from exc
        return
    # The dashboard's processes are what remove the placement groups of Train runs that Tune
    # stopped; without them the next trial waits forever for the leaked CPUs. Bound to loopback.
    # address="local": a new cluster, never one that `ray start` left on this machine.
    # Ray starts its worker processes (Tune trials, Train workers, Data tasks) at nice 15. On a
    # machine busy with other work at nice 0 they then get ~3 % of a core each, and a search
    # looks hung: benchmarks/soak_tune.py's hogs left 2 trials without one report in 600 s. The
    # local cluster's workers share the CPUs as equals instead (RAY_worker_niceness, read by
    # the raylet this call starts); a cluster of `ray start` keeps its operator's setting.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if DASHBOARD_ENV not in os.environ:
        set_dashboard_start_s(DASHBOARD_START_S)
    try:
        with loopback_node():
            ray.init(address="local", num_cpus=local_logical_cpus(), include_dashboard=True,
                     dashboard_host="127.0.0.1", log_to_driver=not quiet, configure_logging=True,
                     logging_level="WARNING", runtime_env=runtime_env)
    except Exception as exc:
        advice = (f"; Ray waited {dashboard_start_s()} s for its dashboard: on a busy "
                  f"machine set {DASHBOARD_ENV} higher" if "dashboard" in str(exc).lower() else "")
        raise ClusterStartError(f"the local Ray cluster did not start: {error_line(exc, 400)}{advice}") from exc


@contextlib.contextmanager
def bounded_join(address: str, seconds: float | None = None) -> Iterator[None]:
    """Around ``ray.init(address=...)``: the join ends on SIGTERM or Ctrl-C, and after ``seconds``
    (``JOIN_S``) in all.

    A server that answers like a GCS and then says nothing kept ray.init retrying every 30 s,
    forever, inside Ray's C++ client, where Python runs no signal handler: a SIGTERM waited up to
    30 s for a retry to return. Python's C-level handler still writes each signal to the wakeup
    pipe (``signal.set_wakeup_fd``); a thread reads it and ends the process with one line. Nothing
    has been written before a pipeline joins its cluster, so nothing is left half-done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    before = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    bound = JOIN_S if seconds is None else seconds
    deadline = time.monotonic() + bound
    done = threading.Event()

    def leave(code: int, message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(code)

    def watch() -> None:
        while not done.is_set():
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read], [], [], min(1.0, max(left, 0.0)))
            if done.is_set():
                return
            signums = os.read(read, 64) if ready else b""
            caught = [signal.Signals(n).name for n in signums if n in (signal.SIGINT, signal.SIGTERM)]
            if caught:
                leave(130, f"interrupted ({caught[0]}) while joining the Ray cluster at {address}")
            if left <= 0:
                leave(1, f"could not join the Ray cluster at {address}: no answer in {bound:.0f} s (something "
                      "accepts connections there but does not complete Ray's handshake); check that the head is "
                      "up and that the address is its GCS port")

    watcher = threading.Thread(target=watch, name="bounded-join", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(before)
        os.write(write, b"\0")  # wakes the watcher at once: no signal, and done is set
        watcher.join()
        os.close(read)
        os.close(write)


HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame: type 4
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + HTTP2_SETTINGS  # a client's connection preface


def _probe(address: str) -> None:
    """Refuse at once an address where nothing listens, or where something that is not Ray
    does (it does not answer an HTTP/2 preface with its SETTINGS, as a gRPC server does; with
    RAY_USE_TLS the handshake is left to Ray): ray.init kept retrying either for minutes
    (127.0.0.1:1 after 4 min; a plain HTTP server, ignoring SIGTERM). ``auto`` and other forms
    without a port pass."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S)
    except OSError as exc:
        raise ClusterStartError(f"could not join the Ray cluster at {address}: nothing answers there ({exc}); "
                                "start it (ray start --head, ray up cluster.yaml), or leave out --address "
                                "and RAY_ADDRESS for a local cluster") from None
    if os.environ.get("RAY_USE_TLS"):
        conn.close()
        return
    with conn:
        try:
            conn.sendall(HTTP2_HELLO)
            head = conn.recv(9)
        except OSError:  # it accepted the connection, then said nothing in time
            head = b""
    if len(head) < 9 or head[3] != HTTP2_SETTINGS[3]:  # Ray's GCS (and Ray Client) speak gRPC, over HTTP/2
        raise ClusterStartError(f"could not join the Ray cluster at {address}: something listens there, but it is "
                                f"not Ray (it did not answer as a gRPC server; first bytes {head[:16]!r}); check the "
                                "address and port (the head's GCS port, 6379 by default)")


def _is_loopback(address: str) -> bool:
    """Whether a cluster address (``host:port``, ``ray://host:port``) names this machine's loopback."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plan_concurrency(cluster: dict, workers: int, cpus_per_worker: float, gpus_per_worker: float,
                     what: str = "a trial", flag: str = "--workers") -> int:
    """How many runs of ``workers`` workers fit at once without starving Ray Data; raises,
    naming ``flag``, when not even one does. ``cluster``: ``ray.cluster_resources()``."""
    per_trial = workers * cpus_per_worker + (TRIAL_DRIVER_CPU if workers > 1 else 0.0)
    cpus = float(cluster.get("CPU", 0))
    by_cpu = math.floor((cpus - DATA_CPUS) / per_trial + 1e-9)
    if by_cpu < 1:
        raise ValueError(f"{what} needs {per_trial:g} CPUs plus {DATA_CPUS:g} kept free for Ray Data, "
                         f"but the cluster has {cpus:g}: lower {flag} or cpus_per_worker, or add CPUs")
    if gpus_per_worker:
        gpus = float(cluster.get("GPU", 0))
        by_gpu = math.floor(gpus / (workers * gpus_per_worker) + 1e-9)
        if by_gpu < 1:
            raise ValueError(f"{what} needs {workers * gpus_per_worker:g} GPUs (--gpus-per-worker "
                             f"{gpus_per_worker:g}), the cluster has {gpus:g}")
        return min(by_cpu, by_gpu)
    return by_cpu
