"""The driver: a Ray TorchTrainer over the processed train split (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

from pathlib import Path

import ray
import ray.data
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from mikgnn.config import ModelConfig, ParallelConfig, TrainConfig
from mikgnn.distributed.ray_workarounds import LoopbackTorchConfig
from mikgnn.distributed.train_loop import loop_config, train_loop_per_worker
from mikgnn.storage import Location, resolve

READ_CPUS = 0.25  # a read task asks for a quarter CPU: Train workers holding whole CPUs cannot starve it


def read_train_split(processed: str | Path | Location) -> ray.data.Dataset:
    """The train split of a processed dataset, through Ray Data (each worker gets a shard)."""
    processed = resolve(processed)
    return ray.data.read_parquet((processed / "train").path, filesystem=processed.fs, num_cpus=READ_CPUS)


def make_trainer(processed: str | Path | Location, model_cfg: ModelConfig, train_cfg: TrainConfig, *, workers: int = 1,
                 gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0, storage_path: str | Path | Location,
                 name: str, max_failures: int = 3, callbacks: list | None = None, placement_strategy: str = "PACK",
                 parallel: ParallelConfig | None = None, train_table: ray.ObjectRef | None = None) -> TorchTrainer:
    """``processed`` and ``storage_path`` are local folders or URIs (``mikgnn.storage``).
    ``train_table``: the train split as an Arrow table in Ray's object store, when the caller
    already has it (a search reads it once for all its trials; each worker takes its rows,
    ``session.py``); by default Ray Data reads it from ``processed``."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    resources = {"CPU": cpus_per_worker} | ({"GPU": gpus_per_worker} if gpus_per_worker else {})
    processed, storage = resolve(processed), resolve(storage_path)
    config = loop_config(processed.uri, model_cfg, train_cfg, cpus_per_worker, parallel)
    if train_table is not None:
        config["train_table"] = train_table
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        torch_config=LoopbackTorchConfig(backend="nccl" if gpus_per_worker else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=bool(gpus_per_worker),
                                     resources_per_worker=resources, placement_strategy=placement_strategy),
        run_config=RunConfig(name=name, storage_path=storage.uri,
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks),
        datasets={} if train_table is not None else {"train": read_train_split(processed)},
    )
