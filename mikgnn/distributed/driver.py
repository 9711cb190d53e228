"""Which process drives a search, and whether it still lives.

A search's driver ends its MLflow run on every exit it sees: success, failure, Ctrl-C, SIGTERM
(``cluster.sigterm_as_interrupt``). One killed outright (SIGKILL, the OOM killer, a machine
lost) cannot, and its run would stay RUNNING forever. Each search run is therefore tagged with
its driver, ``host:pid:start`` (``start``: the process's start time in clock ticks after boot,
so that a pid the system has since given to another process does not pass for it), and a
later search on the same host ends the runs whose driver is gone. A driver on another host is
neither alive nor dead to this one: its runs are left as they are.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (after the parenthesised command, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def driver_identity(pid: int | None = None) -> str:
    """``host:pid:start`` of this process (or of ``pid``); ``start`` is empty without /proc."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or ''}"


def driver_alive(identity: str) -> bool | None:
    """True or False for a driver of this host; None for one of another host or a bad tag."""
    parts = identity.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, start = parts[0], int(parts[1]), parts[2]
    if host != socket.gethostname():
        return None
    if Path("/proc").is_dir():
        now = _start_ticks(pid)
        return now is not None and (not start or now == start)
    return _pid_exists(pid)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
