"""Raw datasets: readers for the official formats, a custom folder format, and the data root."""

from __future__ import annotations

import os
from pathlib import Path

from mikgnn.datasets.custom import custom
from mikgnn.datasets.errors import DatasetError, MissingFilesError
from mikgnn.datasets.official import OFFICIAL
from mikgnn.datasets.root import DATA_ROOT_ENV, resolve_data_root
from mikgnn.datasets.spec import DatasetSpec, RawFile

__all__ = [
    "DATA_ROOT_ENV",
    "DatasetError",
    "DatasetSpec",
    "MissingFilesError",
    "RawFile",
    "get_dataset",
    "resolve_data_root",
]


def get_dataset(name: str, data_root: str | os.PathLike | None = None) -> DatasetSpec:
    """The spec of an official dataset by name, or of a custom dataset folder by path."""
    if name in OFFICIAL:
        return OFFICIAL[name](resolve_data_root(data_root))
    if os.sep in name or Path(name).is_dir():
        return custom(Path(name))
    raise DatasetError(
        f"unknown dataset {name!r}: choose one of {sorted(OFFICIAL)}, "
        "or give the path of a custom dataset folder (see README)"
    )
