"""What a dataset is on disk: its raw files, their formats, and how labels are derived."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mikgnn.datasets.delimited import TextFormat
from mikgnn.datasets.download import RemoteFile, fetch, mirrored
from mikgnn.datasets.errors import MissingFilesError, check_readable


@dataclass(frozen=True)
class RawFile:
    """A raw file of a dataset: its name in the dataset folder and its layout.

    ``parquet`` files are read with pyarrow; ``fmt`` then only names the columns and kinds.
    """

    name: str
    fmt: TextFormat
    parquet: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: where its files are, how to read them, and how labels are made (SPEC §2).

    - ``threshold``: a row is positive when its ``rating`` >= threshold; None: every row is.
    - ``labelled``: rows carry a 0/1 ``label`` as shipped; no negatives are sampled.
    - ``item_map``: None means item ids are entity ids (already indexed, or matched by text).
    - ``indexed_kg``: KG ids are already 0-based entity / relation indices.
    """

    name: str
    folder: Path
    ratings: RawFile
    kg: RawFile
    item_map: RawFile | None = None
    threshold: float | None = None
    labelled: bool = False
    indexed_kg: bool = False
    remotes: tuple[RemoteFile, ...] = field(default_factory=tuple)
    notes: str = ""

    @property
    def files(self) -> list[RawFile]:
        return [f for f in (self.ratings, self.kg, self.item_map) if f is not None]

    def path(self, raw: RawFile) -> Path:
        return self.folder / raw.name

    def remote(self, name: str) -> RemoteFile | None:
        return next((r for r in self.remotes if r.name == name), None)

    def ensure_present(self, download: bool = False) -> None:
        """``check_present``, after fetching the absent downloadable files when ``download``."""
        if download:
            for raw in self.files:
                remote = self.remote(raw.name)
                if not self.path(raw).is_file() and remote is not None:
                    print(f"downloading {mirrored(remote.url)} -> {self.path(raw)}", flush=True)
                    fetch(remote, self.folder)
        self.check_present()

    def check_present(self) -> None:
        """Raise a MissingFilesError naming every absent file and where to get it."""
        missing = [f.name for f in self.files if not self.path(f).is_file()]
        if not missing:
            for f in self.files:
                check_readable(self.path(f))
            return
        sources = []
        for name in missing:
            remote = self.remote(name)
            if remote is None:
                sources.append((name, "your own data (see README)"))
            else:
                sources.append((name, remote.url + (f", unzipped: its {remote.member}" if remote.member else "")))
        downloadable = any(self.remote(name) is not None for name in missing)
        hint = ("Put the files there, or add --download to the command (prepare.py, train.py, tune.py and "
                "reproduce.py take it) to fetch, check and unpack the downloadable ones."
                if downloadable else "Put the files there.")
        if self.notes:
            hint += "\n" + self.notes
        raise MissingFilesError(self.name, self.folder, sources, hint)
