"""Where a training loop runs: a Ray Train worker, or a Tune trial's own process.

The loop (``train_loop.run_training``) asks its session for its rank, its device, its shard of
the train rows, the checkpoint to resume from, where to report, and (with several workers) to
wrap the step's loss for data parallelism. Two sessions:

- ``TrainWorkerSession``: a worker of a TorchTrainer (several workers per trial, or
  ``pipelines/train.py --workers``). Its shard comes through Ray Data (``train.py``), or is
  every world-th row of the train table a search put once into Ray's object store: building a
  Ray Dataset from that table would run a one-CPU task, which a busy cluster can leave waiting
  before the search, and its watchdog, have started.
- ``TrialSession``: a Tune trial of one worker trains in the trial's process. A one-worker
  TorchTrainer would start a Train controller, a placement-group cleaner, a worker and a Ray
  Data split coordinator, each a new process importing torch: about 20 s a trial on the
  2-core machine (docs/benchmarks.md), for training that needs no data parallelism.
"""

from __future__ import annotations

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from ray import tune
from torch import nn

from mikgnn.processed import ProcessedDataset
from mikgnn.training import Rows

COLUMNS = ("user", "item", "label")
# DistributedDataParallel's options: buffers (neighbour tables, a negative sampler's keys) are
# each worker's own; the static graph lets a model leave a parameter unused (the relation
# table under uniform attention) without a search for unused parameters every step.
DDP_OPTIONS = {"broadcast_buffers": False, "static_graph": True}


class TrainWorkerSession:
    """One worker of a Ray TorchTrainer."""

    def __init__(self, train_table: ray.ObjectRef | None = None) -> None:
        context = ray.train.get_context()  # Ray Train
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()
        self.train_table = train_table

    def shard(self, data: ProcessedDataset, positives_only: bool = False) -> Rows:
        """This worker's shard as tensors (its positive rows alone for BPR), cut to the smallest
        shard so every worker steps alike."""
        if self.train_table is not None:
            table = ray.get(self.train_table)  # zero-copy from the node's object store
            picked = np.arange(self.rank, table.num_rows, self.world)
            columns = {c: table.column(c).to_numpy()[picked] for c in COLUMNS}
        else:
            shard = ray.train.get_dataset_shard("train")  # Ray Data
            parts = list(shard.iter_batches(batch_size=1 << 18, batch_format="numpy"))
            columns = {c: np.concatenate([p[c] for p in parts]) if parts else np.zeros(0, np.int64)
                       for c in COLUMNS}
        rows = Rows.from_numpy(columns)
        rows = rows.positives() if positives_only else rows
        size = torch.tensor([len(rows)])
        if self.world > 1:
            dist.all_reduce(size, op=dist.ReduceOp.MIN)
        n = int(size)
        return Rows(rows.user[:n], rows.item[:n], rows.label[:n])

    def prepare(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel (Ray Train's ``prepare_model``; gloo on CPUs,
        NCCL on GPUs): its backward averages the gradients over the workers."""
        return ray.train.torch.prepare_model(module, move_to_device=False, parallel_strategy_kwargs=DDP_OPTIONS)

    def checkpoint(self):
        return ray.train.get_checkpoint()  # the last reported checkpoint, if any

    def report(self, metrics: dict, folder: str | None = None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder else None
        ray.train.report(metrics, checkpoint=checkpoint)


class TrialSession:
    """A Tune trial that trains in its own process: rank 0 of 1, reporting straight to Tune."""

    rank, world = 0, 1

    def __init__(self, gpu: bool = False) -> None:
        self.device = torch.device("cuda") if gpu else torch.device("cpu")

    def shard(self, data: ProcessedDataset, positives_only: bool = False) -> Rows:
        rows = Rows.from_numpy(data.splits["train"])  # the whole train split, read with the others
        return rows.positives() if positives_only else rows

    def checkpoint(self):
        """The trial's last checkpoint when Tune restores it, else None."""
        return tune.get_checkpoint()

    def report(self, metrics: dict, folder: str | None = None) -> None:
        if metrics or folder:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)
