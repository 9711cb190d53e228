"""Where results and processed datasets live: a local folder or a URI, through pyarrow filesystems.

    /data/processed/movie-seed0                  a local folder (relative paths are made absolute)
    s3://bucket/mikgnn/processed/movie-seed0     S3 (credentials from the usual AWS chain)
    s3://bucket/x?endpoint_override=host:9000&scheme=http    an S3-compatible store (MinIO, ...)
    gs://bucket/x, hdfs://namenode/x, file:///x  whatever pyarrow.fs.FileSystem.from_uri knows

A folder is written through ``atomic_folder``: readers never see a half-written one. On a
local filesystem it is written aside and renamed into place. Object stores have no rename, so
there the folder is written in place and its marker file (a processed dataset's manifest)
is written last and removed first: without the marker, a folder does not exist for readers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs


class SharedStorageError(ValueError):
    """A local path given where every node of a multi-node cluster must see the same files."""


@dataclass(frozen=True)
class Location:
    """A file or folder: the filesystem, the path inside it, and the URI a user would write."""

    fs: pafs.FileSystem
    path: str
    uri: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.uri

    def __truediv__(self, part: str) -> Location:
        path = f"{self.path.rstrip('/')}/{part}"
        if self.is_local and "://" not in self.uri:
            return Location(self.fs, path, path)
        scheme, netloc, upath, query, _ = urlsplit(self.uri)
        return Location(self.fs, path, urlunsplit((scheme, netloc, f"{upath.rstrip('/')}/{part}", query, "")))

    def sibling(self, name: str) -> Location:
        parent = self.path.rstrip("/").rsplit("/", 1)[0]
        path = f"{parent}/{name}"
        if self.is_local and "://" not in self.uri:
            return Location(self.fs, path, path)
        scheme, netloc, upath, query, _ = urlsplit(self.uri)
        return Location(self.fs, path, urlunsplit((scheme, netloc, f"{upath.rstrip('/').rsplit('/', 1)[0]}/{name}",
                                                   query, "")))

    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as f:
            return f.read().decode()

    def write_text(self, text: str) -> None:
        self.fs.create_dir(self.path.rstrip("/").rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write(text.encode())

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def files(self, prefix: str = "", suffix: str = "") -> list[Location]:
        """The files directly inside this folder whose names match, sorted by name."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        names = sorted(i.base_name for i in self.fs.get_file_info(selector)
                       if i.type == pafs.FileType.File and i.base_name.startswith(prefix)
                       and i.base_name.endswith(suffix))
        return [self / n for n in names]

    def children(self) -> list[Location]:
        """The folders directly inside this folder, sorted by name."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        return [self / i.base_name for i in sorted(self.fs.get_file_info(selector), key=lambda i: i.base_name)
                if i.type == pafs.FileType.Directory]

    def mtime(self) -> float:
        found = self.info().mtime
        return found.timestamp() if found is not None else 0.0

    def delete(self) -> None:
        """Remove this file or folder; nothing happens when it does not exist."""
        kind = self.info().type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(self.path)


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def resolve(path: str | os.PathLike | Location) -> Location:
    """A Location for a local path (made absolute) or a URI pyarrow knows."""
    if isinstance(path, Location):
        return path
    text = str(path)
    if is_uri(text):
        try:
            fs, inner = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{text}: not a storage location pyarrow can open ({exc})") from None
        return Location(fs, inner.rstrip("/") or inner, text.rstrip("/"))
    local = str(Path(text).expanduser().resolve())
    return Location(pafs.LocalFileSystem(), local, local)


@contextmanager
def atomic_folder(final: Location, marker: str) -> Iterator[Location]:
    """Yield where to write the folder ``final``; it appears only if the block completes.

    The caller writes ``marker`` (a file name inside the folder) last. On failure nothing new
    is left behind; locally, the previous folder even survives a failed rebuild.
    """
    if final.is_local:
        _remove_stale_stages(final)
        made = [p for p in Path(final.path).parents if not p.exists()]  # folders this build creates
        stage = final.sibling(_stage_name(final, "tmp"))
        stage.delete()
        stage.mkdir()
        try:
            yield stage
            _replace_local(stage, final)
            made = []
        finally:
            stage.delete()
            for folder in made:  # innermost first: a refused build leaves no empty processed/
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        return
    (final / marker).delete()  # first: from now on readers see no folder
    final.delete()
    final.mkdir()
    try:
        yield final
    except BaseException:
        final.delete()
        raise


def _stage_stem(final: Location) -> str:
    """``final``'s name, or for a long one (a file name holds at most 255 bytes, and the stage's
    name adds about 40) its start and a hash of the whole."""
    name = final.name
    if len(name.encode()) <= 120:
        return name
    return f"{name.encode()[:80].decode(errors='ignore')}~{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _stage_name(final: Location, kind: str) -> str:
    """A hidden folder beside ``final`` owned by this process: ``.<stem>.<kind>-<host>-<pid>-<random>``."""
    return f".{_stage_stem(final)}.{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _remove_stale_stages(final: Location) -> None:
    """Remove the staging folders (``_stage_name``: tmp or old) that a killed earlier run on this
    host left beside ``final``: those whose process is gone."""
    parent = Path(final.path).parent
    if not parent.is_dir():
        return
    host = re.escape(socket.gethostname())
    owned = re.compile(rf"\.{re.escape(_stage_stem(final))}\.(?:tmp|old)-{host}-(\d+)-[0-9a-f]+")
    for path in parent.iterdir():
        found = owned.fullmatch(path.name)
        if found and not _alive(int(found[1])):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _replace_local(stage: Location, final: Location) -> None:
    old = None
    if final.exists():
        old = final.sibling(_stage_name(final, "old"))
        os.replace(final.path, old.path)
    os.replace(stage.path, final.path)
    if old is not None:
        old.delete()


NAME_MAX = 255  # bytes of one file or folder name (Linux, macOS, Windows alike)


def check_writable(location: Location | str | Path, flag: str) -> None:
    """Refuse, before any work, a local destination that cannot be written: a read-only folder,
    a full disk, a file where a folder should be. A ValueError naming ``flag``, the path and
    the free space; nothing is left behind (the probe file is removed). A URI passes: its store
    answers for itself."""
    location = location if isinstance(location, Location) else resolve(location)
    if not location.is_local:
        return
    folder = Path(location.path)
    long = next((part for part in folder.parts if len(part.encode()) > NAME_MAX), None)
    if long is not None:
        raise ValueError(f"{flag} {folder}: a name in that path is {len(long.encode())} bytes, more than the "
                         f"{NAME_MAX} a file system takes ({long[:40]}...): give {flag} a shorter path")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    try:
        if existing.is_file() and existing == folder:
            raise OSError(f"{folder} is a file, not a folder")
        probe_in = existing if existing.is_dir() else existing.parent
        with tempfile.NamedTemporaryFile(dir=probe_in, prefix=".mikgnn-write-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise ValueError(f"{flag} {folder}: cannot write there ({exc.strerror or exc}; {free_mib(folder):,.0f} MiB "
                         "free)") from None


def free_mib(path: str | Path) -> float:
    """The free space, in MiB, of the file system that holds ``path`` (or its nearest existing parent)."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.is_dir()), Path("/"))
    return shutil.disk_usage(existing).free / 2**20
