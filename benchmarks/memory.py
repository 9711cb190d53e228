"""Peak memory of a command and all its descendants (Ray's raylet and workers included).

PSS (proportional set size) is summed over the process tree, so pages shared between
processes, such as Ray's object store, count once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _tree(pid: int) -> list[int]:
    seen, stack = [], [pid]
    while stack:
        p = stack.pop()
        seen.append(p)
        stack.extend(_children(p))
    return seen


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _label(pid: int) -> str:
    """A process's title: Ray renames its workers (``ray::ImplicitFunc.train``)."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return text if text.startswith("ray::") else " ".join(Path(w).name for w in text.split()[:2])


def _rank(title: str) -> tuple[bool, bool, int]:
    """Which of a process's titles names it best: a Ray task's (``ray::ImplicitFunc.train``) over
    an idle worker's and the interpreter's command line."""
    return title.startswith("ray::"), not title.startswith("ray::IDLE"), len(title)


def run_measured(cmd: list[str], env: dict | None = None, interval: float = 0.2, cwd: Path | None = None,
                 per_process: dict | None = None) -> tuple[float, float, int]:
    """Run ``cmd``; return (wall seconds, peak PSS of its process tree in GiB, exit code).
    ``per_process``, when given, gets each process's (peak PSS in MiB, title) by pid."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            sizes = {p: _pss_kib(p) for p in _tree(proc.pid)}
            peak = max(peak, sum(sizes.values()))
            if per_process is not None:
                for p, kib in sizes.items():
                    mib, title = per_process.get(p, (0, ""))
                    label = _label(p)  # a Ray worker's title changes with its task: its busiest is kept
                    per_process[p] = (max(mib, round(kib / 1024)), max(title, label, key=_rank))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return wall, peak / (1 << 20), code
