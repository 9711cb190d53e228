"""Where datasets live: the --data-root flag, else $MIKGNN_DATA_ROOT, else ./data."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "MIKGNN_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("data")


def resolve_data_root(flag: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit flag, else the environment variable, else ./data."""
    if flag:
        return Path(flag).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_ROOT
