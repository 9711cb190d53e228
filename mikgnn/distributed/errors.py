"""Errors of the distributed layer that an entry script catches before it has imported Ray
(``train.py`` trains without Ray unless given ``--workers``)."""

from __future__ import annotations


class ClusterStartError(RuntimeError):
    """Ray could not be started (a local cluster) or joined (an address): what Ray said, and
    what to do; the pipelines print it as one line and exit 1."""
