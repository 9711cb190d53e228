"""The preparation of ``mikgnn.prepare`` with its two per-block stages as Ray Data tasks.

Stage 1 maps line-aligned byte chunks of the ratings file to rated rows; stage 2 maps blocks of
whole users to their labelled rows. The tasks stay on the driver's node, which alone needs the
raw files; the output goes to shared storage on a multi-node cluster. The files are the same as
``mikgnn.prepare.LocalExecutor``'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import ray

from mikgnn.datasets import DatasetError, DatasetSpec
from mikgnn.datasets.delimited import Chunk
from mikgnn.distributed.cluster import connect
from mikgnn.distributed.ray_workarounds import ray_data_errors_unlogged, without_retry_advice
from mikgnn.prepare import CHUNK_BYTES, concat_rows, label_block, parse_chunk
from mikgnn.prepare import prepare as prepare_with
from mikgnn.storage import Location

NODE_ID_LABEL = "ray.io/node-id"  # the label Ray gives every node: its node id


def prepare(spec: DatasetSpec, output: str | Path | Location, seed: int, chunk_bytes: int = CHUNK_BYTES,
            address: str | None = None) -> dict:
    """``mikgnn.prepare.prepare`` on Ray: it is joined (``address``) or started only when there
    is something to build. On a multi-node cluster give ``output`` on shared storage."""
    return prepare_with(spec, output, seed, chunk_bytes, RayExecutor(address))


class RayExecutor:
    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def start(self) -> None:
        connect(self.address)
        ctx = ray.data.DataContext.get_current()  # before any dataset: datasets capture it
        ctx.execution_options.preserve_order = True  # the split depends on row order
        ctx.raise_original_map_exception = True  # our DatasetError, not a UserCodeException

    def parse(self, spec: DatasetSpec, items: pd.Index | None, chunks: list[Chunk]) -> pa.Table:
        def parse(batch: pa.Table) -> pa.Table:
            row = batch.to_pylist()[0]
            return parse_chunk(Chunk(row["path"], row["start"], row["end"]), spec, items)

        ds = ray.data.from_items([{"path": c.path, "start": c.start, "end": c.end} for c in chunks],
                                 override_num_blocks=len(chunks))
        return _run(ds.map_batches(parse, batch_size=1, batch_format="pyarrow", label_selector=_on_this_node()))

    def label(self, blocks: list[pa.Table], n_items: int, seed: int) -> pa.Table:
        def label(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return label_block(batch, n_items, seed)

        ds = ray.data.from_arrow(blocks).map_batches(label, batch_size=None, batch_format="numpy",
                                                     label_selector=_on_this_node())
        return _run(ds)


def _on_this_node() -> dict[str, str]:
    """Preparation tasks run on the driver's node: the raw files only need to be there (the head
    node, for a job submitted to a cluster), and the output is written once, by the driver. A
    label selector on Ray's node-id label (Ray Data's named option; ``scheduling_strategy``
    through ``ray_remote_args`` is deprecated)."""
    return {NODE_ID_LABEL: ray.get_runtime_context().get_node_id()}


def _run(ds) -> pa.Table:
    """Execute a Ray Data dataset in order and gather it, surfacing our own input errors."""
    try:
        with ray_data_errors_unlogged():
            tables = ray.get(ds.to_arrow_refs())
    except Exception as exc:  # Ray wraps task errors; find the DatasetError inside
        cause = _dataset_error(exc)
        if cause is None:
            raise
        raise DatasetError(without_retry_advice(str(cause))) from None
    return concat_rows(tables)


def _dataset_error(exc: BaseException) -> BaseException | None:
    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DatasetError) and not isinstance(e, ray.exceptions.RayError):
            return e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None
