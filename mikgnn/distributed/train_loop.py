"""The distributed training loop: the same run_epoch / finish as the single-process fit, run
by the workers of a Ray TorchTrainer (data-parallel) or inside a one-worker Tune trial
(``session.py`` says where).

Each Train worker reads its shard of the train split once (``session.py``), keeps it as tensors and
reshuffles it locally every epoch. As ``ParallelConfig.sync_every`` says, the step's loss runs
in torch's DistributedDataParallel (Ray Train's ``prepare_model``: gloo on CPUs, NCCL on GPUs),
which averages the gradients in every backward pass, or workers step alone and torch's
``PostLocalSGDOptimizer`` averages their parameters every K steps (local SGD). Rank 0 alone
validates, decides early stopping, checkpoints, tests and reports; the search's driver logs what
it reports to MLflow (``run_owner``). Every epoch ends with a checkpoint, so a restarted worker
group resumes after the last finished epoch.
"""

from __future__ import annotations

import json
import resource
import tempfile
from dataclasses import asdict
from pathlib import Path

import ray
import torch
import torch.distributed as dist
from torch.distributed.algorithms.model_averaging.averagers import PeriodicModelAverager
from torch.distributed.algorithms.model_averaging.utils import average_parameters
from torch.distributed.optim import PostLocalSGDOptimizer

from mikgnn.config import ModelConfig, ParallelConfig, TrainConfig
from mikgnn.distributed.session import TrainWorkerSession, TrialSession
from mikgnn.experiment import FitState, build, finish, run_epoch
from mikgnn.model_store import STATE_FILE, CheckpointError, load_state, write_config
from mikgnn.models import needs_train_rows
from mikgnn.preprocess.split import SPLITS
from mikgnn.processed import load_processed
from mikgnn.training import DataParallelStep, StepLoss, shuffled_batches, train_epoch

STATE_JSON = "state.json"
FINAL = "final"  # result key: the last report, with the test metrics of the best epoch
WARNING = "warning"  # result key: the "not learning" warning, the epoch it fires


def loop_config(processed: str, model: ModelConfig, train: TrainConfig, cpus_per_worker: float,
                parallel: ParallelConfig | None = None) -> dict:
    """What ``run_training`` reads, as plain values that travel to Ray workers (``configs`` reads
    the dataclasses back)."""
    return {"processed": processed, "model": asdict(model), "train": asdict(train),
            "threads_per_worker": max(1, int(cpus_per_worker)), "parallel": asdict(parallel or ParallelConfig())}


def configs(config: dict) -> tuple[ModelConfig, TrainConfig]:
    train = dict(config["train"])
    train["ks"] = tuple(train["ks"])
    return ModelConfig(**config["model"]), TrainConfig(**train)


def worker_facts(world: int) -> dict:
    """Where every worker ran and its peak resident memory so far, gathered on every rank."""
    facts = {"node": ray.get_runtime_context().get_node_id(),
             "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    gathered = [facts]
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, facts)
    out = {"worker_nodes": ",".join(f["node"] for f in gathered)}
    out.update({f"worker{rank}/peak_rss_mib": f["peak_rss_mib"] for rank, f in enumerate(gathered)})
    return out


def _save(exp, state: FitState, generator: torch.Generator, folder: str, config: dict) -> None:
    """Tensors (state dicts, the RNG state) in ``state.pt``, loaded back with weights_only; the
    rest of the resume state (epoch, best metric, history) as JSON beside them, and the
    configuration that rebuilds the model (``model_store``: what recommend.py reads)."""
    torch.save({"model": exp.model.state_dict(), "optimizer": exp.optimizer.state_dict(),
                "best_state": state.best_state, "generator": generator.get_state()}, Path(folder) / STATE_FILE)
    plain = {k: v for k, v in asdict(state).items() if k != "best_state"}
    (Path(folder) / STATE_JSON).write_text(json.dumps(plain))
    write_config(folder, *configs(config), config["processed"])


def _restore(exp, generator: torch.Generator, session) -> FitState:
    checkpoint = session.checkpoint()
    if checkpoint is None:
        return FitState()
    with checkpoint.as_directory() as folder:
        saved = load_state(folder)
        try:
            plain = json.loads((Path(folder) / STATE_JSON).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {folder} is incomplete or unreadable: {exc}") from None
    exp.model.load_state_dict(saved["model"])
    exp.optimizer.load_state_dict(saved["optimizer"])
    generator.set_state(saved["generator"])
    return FitState(**plain, best_state=saved["best_state"])


def data_parallel(exp, train_cfg: TrainConfig, parallel: ParallelConfig, session) -> DataParallelStep | None:
    """How this worker steps with the others: None alone. sync_every = 1: the step's loss in
    DDP, whose backward averages the gradients (buffers such as neighbour tables and the
    negative sampler's stay per worker). sync_every = K: local SGD, parameters averaged every K
    optimizer steps and at the end of each epoch, Adam's moments per worker."""
    if session.world == 1:
        return None
    loss = StepLoss(exp.model, train_cfg, exp.ls_table, exp.negatives)
    if parallel.sync_every == 1:
        return DataParallelStep(session.prepare(loss), exp.optimizer)
    averager = PeriodicModelAverager(period=parallel.sync_every, warmup_steps=0)
    return DataParallelStep(loss, PostLocalSGDOptimizer(exp.optimizer, averager),
                            end_of_epoch=lambda: average_parameters(exp.model.parameters(), dist.group.WORLD))


def train_loop_per_worker(config: dict) -> None:
    """The entry point of a Ray TorchTrainer's workers."""
    run_training(config, TrainWorkerSession(config.get("train_table")))


def train_in_trial(config: dict) -> None:
    """A Tune trial of one worker: the same loop, in the trial's own process."""
    run_training(config, TrialSession(gpu=bool(config.get("gpu"))))


def run_training(config: dict, session) -> None:
    rank, world, device = session.rank, session.world, session.device
    torch.set_num_threads(max(1, int(config.get("threads_per_worker", 1))))
    model_cfg, train_cfg = configs(config)
    # Rank 0 validates and tests; the others need the KG, and the train rows for label smoothness.
    needed = SPLITS if rank == 0 else (("train",) if train_cfg.ls_weight > 0 or train_cfg.loss == "bpr"
                                       or needs_train_rows(model_cfg) else ())
    data = load_processed(config["processed"], splits=needed)
    exp = build(data, model_cfg, train_cfg, device=device)
    shard = session.shard(data, positives_only=train_cfg.loss == "bpr")
    generator = torch.Generator().manual_seed(train_cfg.seed + rank)
    state = _restore(exp, generator, session)
    parallel = ParallelConfig(**config.get("parallel", {}))
    per_worker_batch = parallel.worker_batch(train_cfg.batch_size, world)
    step = data_parallel(exp, train_cfg, parallel, session)
    stop = state.converged(train_cfg)
    for epoch in range(state.epoch + 1, train_cfg.epochs + 1):
        if stop:
            break
        batches = (b.to(device) for b in shuffled_batches(shard, per_worker_batch, generator))
        if rank == 0:
            metrics = run_epoch(exp, train_cfg, epoch, batches, step)
            stop = state.update(metrics, exp.model, train_cfg)
            warning = state.check_learning(train_cfg, exp.attends)
            if warning is not None:
                print(f"warning: {warning}", flush=True)
                metrics = {**metrics, WARNING: warning}
        else:
            train_epoch(exp.model, exp.optimizer, batches, train_cfg, exp.ls_table, exp.negatives, step)
        flag = torch.tensor([int(stop)])
        if world > 1:
            dist.broadcast(flag, src=0)
        stop = bool(flag.item())
        with tempfile.TemporaryDirectory() as folder:
            if rank == 0:
                _save(exp, state, generator, folder, config)
                session.report(dict(metrics, best_epoch=state.best_epoch), folder)
            else:
                session.report({})
    facts = worker_facts(world)
    if rank == 0:
        result = finish(exp, state, train_cfg)  # the model now holds the best epoch's weights
        final = {k: v for k, v in result.items() if k not in ("history", "warnings")}  # warnings: a tag
        late = [w for w in result["warnings"] if w.startswith("not converged")]
        if late:  # the console prints it, the run is tagged with it, the search's table shows it
            print(f"warning: {late[0]}", flush=True)
            final[WARNING] = late[0]
        final.update(epoch=state.epoch, done=True, **facts)
        final[FINAL] = True
        with tempfile.TemporaryDirectory() as folder:  # V2: Result.metrics are the last checkpoint's
            _save(exp, state, generator, folder, config)
            session.report(final, folder)
    else:
        session.report({})
