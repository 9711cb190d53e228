"""Reading a dataset's raw files into Arrow tables, chunk by chunk, with located errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mikgnn.datasets.delimited import ID, KEY, SKIP, Chunk, line_number_at, plan_chunks, read_chunk
from mikgnn.datasets.errors import DatasetError
from mikgnn.datasets.spec import DatasetSpec, RawFile


def raw_chunks(spec: DatasetSpec, raw: RawFile, target_bytes: int = 32 << 20) -> list[Chunk]:
    path = spec.path(raw)
    if raw.parquet:
        return [Chunk(str(path), 0, path.stat().st_size)]
    return plan_chunks(path, target_bytes)


def read_raw(chunk: Chunk, raw: RawFile) -> pa.Table:
    """One chunk of a raw file as a table of its read columns."""
    if raw.parquet:
        return _read_parquet(Path(chunk.path), raw)
    return read_chunk(chunk, raw.fmt)


def read_whole(spec: DatasetSpec, raw: RawFile) -> pa.Table:
    path = spec.path(raw)
    return read_raw(Chunk(str(path), 0, path.stat().st_size), raw)


def row_line(chunk: Chunk, raw: RawFile, row: int) -> str:
    """Where row ``row`` of a chunk's table sits in its file, for error messages."""
    if raw.parquet:
        return f"{chunk.path}: row {row + 1}"
    first = line_number_at(chunk.path, chunk.start)
    header = 1 if raw.fmt.header and chunk.start == 0 else 0
    return f"{chunk.path}:{first + header + row}"


def _read_parquet(path: Path, raw: RawFile) -> pa.Table:
    table = pq.read_table(path, columns=raw.fmt.read_columns)
    for col in raw.fmt.columns:
        if col.kind == SKIP:
            continue
        values = table.column(col.name)
        if col.kind == KEY and not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        bad = pc.is_null(values, nan_is_null=True)
        if col.kind == ID or pa.types.is_integer(values.type):
            bad = pc.or_(bad, pc.less(values, 0))
        if pc.any(bad).as_py():
            row = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
            raise DatasetError(f"{path}: row {row + 1}: column '{col.name}' is null, NaN or "
                               f"negative: {values[row].as_py()!r}")
        table = table.set_column(table.schema.get_field_index(col.name), col.name, values)
    return table


def load_item_map(spec: DatasetSpec) -> tuple[pd.Index, np.ndarray]:
    """The item map: raw item ids in file order (item i) and the entity id of each."""
    assert spec.item_map is not None
    table = read_whole(spec, spec.item_map)
    items = table.column("item").to_numpy(zero_copy_only=False)
    entities = table.column("entity").to_numpy(zero_copy_only=False).astype(str)
    path = spec.path(spec.item_map)
    for values, what in ((items, "item"), (entities, "entity")):
        dup = pd.Index(values).duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            first = int(np.flatnonzero(values == values[row])[0])
            chunk = Chunk(str(path), 0, path.stat().st_size)
            raise DatasetError(
                f"{row_line(chunk, spec.item_map, row)}: duplicate {what} '{values[row]}' "
                f"(first at {row_line(chunk, spec.item_map, first)}); the item map must be "
                "one-to-one"
            )
    if len(items) == 0:
        raise DatasetError(f"{path}: the item map has no rows")
    return pd.Index(items), entities
