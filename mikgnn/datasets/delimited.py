"""Delimited text files (CSV/TSV/.dat) read fast with pyarrow, with errors that name file and line.

A file is read in byte chunks that end on a line boundary, so a large file can be parsed by
many workers (the Ray Data preparation hands one chunk to each task). The fast path is
pyarrow's CSV reader; when it fails, or a parsed id is negative, the chunk is scanned line
by line to report the first offending 1-based line of the file.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mikgnn.datasets.errors import DatasetError, line_error

ID = "id"  # a non-negative integer id
KEY = "key"  # an id kept as text
NUMBER = "number"  # a float, e.g. a rating
SKIP = "skip"  # present in the file, not read

_ARROW_TYPES = {ID: pa.int64(), KEY: pa.string(), NUMBER: pa.float64()}
_INTEGER = re.compile(r"[+]?\d+")
_NAN = {"", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str


@dataclass(frozen=True)
class TextFormat:
    """The layout of a delimited file: its delimiter, whether line 1 is a header, its columns,
    and whether a field may be "quoted" (a user's own CSV; the official formats never quote)."""

    delimiter: str
    header: bool
    columns: tuple[Column, ...]
    quoted: bool = False

    @property
    def read_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.kind != SKIP]


@dataclass(frozen=True)
class Chunk:
    """Bytes [start, end) of a file; both ends sit on line boundaries."""

    path: str
    start: int
    end: int


def plan_chunks(path: Path, target_bytes: int = 32 << 20) -> list[Chunk]:
    """Split a file into about ``target_bytes`` chunks that start and end on line boundaries."""
    size = path.stat().st_size
    n = max(1, math.ceil(size / target_bytes))
    bounds = [0]
    with open(path, "rb") as f:
        for k in range(1, n):
            f.seek(max(k * size // n, bounds[-1]))
            f.readline()
            pos = f.tell()
            if bounds[-1] < pos < size:
                bounds.append(pos)
    bounds.append(size)
    return [Chunk(str(path), a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def read_text_table(path: Path, fmt: TextFormat) -> pa.Table:
    """Read a whole delimited file (one chunk)."""
    return read_chunk(Chunk(str(path), 0, path.stat().st_size), fmt)


def read_chunk(chunk: Chunk, fmt: TextFormat) -> pa.Table:
    """Parse one chunk into a table of the format's read columns, or raise a located error."""
    with open(chunk.path, "rb") as f:
        f.seek(chunk.start)
        data = f.read(chunk.end - chunk.start)
    skip_header = fmt.header and chunk.start == 0
    names = [c.name for c in fmt.columns]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1 if skip_header else 0, use_threads=False
            ),
            parse_options=pacsv.ParseOptions(delimiter=fmt.delimiter, quote_char='"' if fmt.quoted else False),
            convert_options=pacsv.ConvertOptions(
                column_types={c.name: _ARROW_TYPES[c.kind] for c in fmt.columns if c.kind != SKIP},
                include_columns=fmt.read_columns,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        _scan(chunk, data, fmt, skip_header)
        raise DatasetError(f"{chunk.path}: cannot parse: {exc}") from exc
    if _has_bad_values(table, fmt):
        _scan(chunk, data, fmt, skip_header)
    return table


def _has_bad_values(table: pa.Table, fmt: TextFormat) -> bool:
    for col in fmt.columns:
        if table.num_rows == 0 or col.kind == SKIP:
            continue
        values = table.column(col.name)
        if col.kind == ID and pc.min(values).as_py() < 0:
            return True
        if col.kind == NUMBER and pc.any(pc.is_nan(values)).as_py():
            return True
        if col.kind == KEY and pc.any(pc.is_in(values, pa.array(sorted(_NAN)))).as_py():
            return True
    return False


def line_number_at(path: str | Path, offset: int) -> int:
    """The 1-based line number of the line that starts at byte ``offset``."""
    count = 0
    with open(path, "rb") as f:
        remaining = offset
        while remaining > 0:
            block = f.read(min(remaining, 1 << 24))
            if not block:
                break
            count += block.count(b"\n")
            remaining -= len(block)
    return count + 1


def _scan(chunk: Chunk, data: bytes, fmt: TextFormat, skip_header: bool) -> None:
    """Find the first bad line of ``data`` and raise an error naming it; return if none."""
    first_line = line_number_at(chunk.path, chunk.start)
    for k, raw in enumerate(data.split(b"\n")):
        if k == 0 and skip_header:
            continue
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not text.strip():
            continue
        problem = _check_line(text, fmt)
        if problem:
            raise line_error(chunk.path, first_line + k, f"{problem}: {text[:200]!r}")


def split_line(text: str, delimiter: str, quoted: bool) -> list[str]:
    """A line's fields; a ValueError for a quoted field that is never closed."""
    if not quoted:
        return text.split(delimiter)
    try:  # an empty line is one empty field, as str.split reads it
        return next(csv.reader([text], delimiter=delimiter, quotechar='"', strict=True)) or [""]
    except csv.Error as exc:
        raise ValueError(f'a double quote (") opens a field that the line never closes ({exc})') from None


def _check_line(text: str, fmt: TextFormat) -> str | None:
    try:
        fields = split_line(text, fmt.delimiter, fmt.quoted)
    except ValueError as exc:
        return str(exc)
    if len(fields) != len(fmt.columns):
        delim = {"\t": "tab", ",": "comma", " ": "space"}.get(fmt.delimiter, repr(fmt.delimiter))
        return f"expected {len(fmt.columns)} {delim}-separated fields, found {len(fields)}"
    for col, value in zip(fmt.columns, fields):
        value = value.strip()
        if col.kind == SKIP:
            continue
        if value in _NAN:
            return f"column '{col.name}' is empty or NaN"
        if col.kind == ID and not _INTEGER.fullmatch(value):
            if value.startswith("-") and _INTEGER.fullmatch(value[1:]):
                return f"column '{col.name}' has a negative id {value}"
            return f"column '{col.name}' is not an integer id: {value!r}"
        if col.kind == NUMBER:
            try:
                number = float(value)
            except ValueError:
                return f"column '{col.name}' is not a number: {value!r}"
            if math.isnan(number):
                return f"column '{col.name}' is NaN"
    return None
