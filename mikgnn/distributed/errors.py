"""Errors of the distributed layer that an entry script catches before it has imported Ray
(``train.py`` trains without Ray unless given ``--workers``), and how an error from Ray, Tune
or MLflow is put in one line of a message."""

from __future__ import annotations


def error_line(exc: BaseException, limit: int) -> str:
    """An error as one line, ``Type: message``: its first non-empty line (Ray's messages often
    start with a newline), cut at ``limit`` characters."""
    line = next((x.strip() for x in str(exc).splitlines() if x.strip()), "")
    return f"{type(exc).__name__}: {line[:limit]}"


class ClusterStartError(RuntimeError):
    """Ray could not be started (a local cluster) or joined (an address): what Ray said, and
    what to do; the pipelines print it as one line and exit 1."""
