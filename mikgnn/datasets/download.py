"""Official download addresses, checksums, and fetching raw files into the data root."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
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


MIRROR_ENV = "MIKGNN_DOWNLOAD_MIRROR"


def mirrored(url: str) -> str:
    """``url``, or its copy on the mirror ``$MIKGNN_DOWNLOAD_MIRROR`` (a base URL under which the
    official files lie at <host>/<path>: a machine without the internet, or a test)."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def fetch(remote: RemoteFile, folder: Path, timeout: float = 30.0) -> Path:
    """Download ``remote`` into ``folder`` atomically, unzip its member, check its checksum:
    nothing is left in ``folder`` unless the whole file arrived and is the official one."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    url = mirrored(remote.url)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        raw = Path(tmp) / "download"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(raw, "wb") as f:
                shutil.copyfileobj(response, f)
        except OSError as exc:
            raise DatasetError(f"could not download {url}: {exc}; offline, put the file at {target} "
                               "yourself") from None
        payload = raw
        if remote.member is not None:
            payload = Path(tmp) / remote.name
            try:
                with zipfile.ZipFile(raw) as archive, archive.open(remote.member) as src, open(payload, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (zipfile.BadZipFile, KeyError) as exc:
                raise DatasetError(f"{url}: not the official archive ({exc}); nothing was written") from None
        actual = sha256_of(payload)
        if remote.sha256 is not None and actual != remote.sha256:
            raise DatasetError(f"{url}: {remote.name} has sha256 {actual}, not the official {remote.sha256} (a "
                               f"corrupt or different file); nothing was written to {folder}")
        os.replace(payload, target)
    return target
