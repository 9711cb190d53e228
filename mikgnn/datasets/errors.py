"""Errors raised by the data layer. Each message names the file, line or value at fault."""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """Bad or missing input data."""


class MissingFilesError(DatasetError):
    """Raw files are absent; the message says which ones, where, and where to get them."""

    def __init__(self, dataset: str, folder: Path, missing: list[tuple[str, str]], hint: str = ""):
        lines = [f"dataset '{dataset}': missing raw file(s) in {folder}:"]
        for name, source in missing:
            lines.append(f"  - {folder / name}    (get it from: {source})")
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))
        self.dataset = dataset
        self.folder = folder
        self.missing = [name for name, _ in missing]


def line_error(path: Path | str, line: int, message: str) -> DatasetError:
    """An error located at a 1-based line of a file."""
    return DatasetError(f"{path}:{line}: {message}")


def check_readable(path: Path) -> None:
    """A DatasetError naming ``path`` and the cause when this process cannot open it."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc}): give the user that runs this "
                           "read access to it") from None
