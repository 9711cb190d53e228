"""Official download addresses, checksums, and fetching raw files into the data root."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mikgnn.datasets.errors import DatasetError


@dataclass(frozen=True)
class RemoteFile:
    """One raw file of a dataset: its name in the dataset folder and where it comes from.

    ``member`` names the file inside a zip archive when ``url`` is an archive.
    ``sha256`` is the checksum of the file itself (not the archive), when known.
    """

    name: str
    url: str
    sha256: str | None = None
    member: str | None = None


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str | None) -> str:
    """The file's sha256; raises when it differs from ``expected``."""
    actual = sha256_of(path)
    if expected is not None and actual != expected:
        raise DatasetError(
            f"{path}: sha256 {actual} does not match the official {expected}; "
            "the file is corrupt or a different version: delete it and download it again"
        )
    return actual


def fetch(remote: RemoteFile, folder: Path, timeout: float = 30.0) -> Path:
    """Download ``remote`` into ``folder`` atomically and check its checksum."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        raw = Path(tmp) / "download"
        try:
            with urllib.request.urlopen(remote.url, timeout=timeout) as response, open(raw, "wb") as f:
                shutil.copyfileobj(response, f)
        except OSError as exc:
            raise DatasetError(f"could not download {remote.url}: {exc}") from exc
        payload = raw
        if remote.member is not None:
            payload = Path(tmp) / remote.name
            with zipfile.ZipFile(raw) as archive, archive.open(remote.member) as src, open(
                payload, "wb"
            ) as dst:
                shutil.copyfileobj(src, dst)
        verify(payload, remote.sha256)
        os.replace(payload, target)
    return target
