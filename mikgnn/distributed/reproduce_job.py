"""A reproduction's cells as Ray Tune grids: every cell one trial, one MLflow run.

The accuracy cells run as one grid, as many at once as the cluster fits (``plan_concurrency``);
the timing cells (Table 7) then run as a second grid, one at a time, so that no other trial
shares the machine while an epoch is timed. Each run is tagged with its cell's identity and
the table slots it fills (``mikgnn.table.<N>``), which is all ``report.py`` reads. A cell
whose identity already has a FINISHED run is not trained again: rerunning the command after
an interruption trains only the missing cells, and an interrupted cell continues from its last
epoch's checkpoint in the same run (``cell_resume``).
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from functools import partial

import ray
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.search import BasicVariantGenerator

from mikgnn.distributed.cell_resume import Resume, resumable
from mikgnn.distributed.cluster import plan_concurrency
from mikgnn.distributed.console import SearchConsole
from mikgnn.distributed.errors import error_line
from mikgnn.distributed.run_owner import RunOwner, RunSpec, end_running
from mikgnn.distributed.search_driver import SearchStopped, fit, run_config
from mikgnn.distributed.tracking import KIND_TAG, experiment_id
from mikgnn.distributed.train_loop import FINAL, loop_config, train_in_trial
from mikgnn.reproduction.cells import Cell

CELL_TAG = "mikgnn.cell"  # the cell's identity (cells.Cell.identity)
TABLE_TAG = "mikgnn.table."  # + table number: the row (and n or h) the run fills in that table
SEED_TAG = "mikgnn.seed"
HARDWARE_TAG = "mikgnn.hardware"
DATASET_TAG = "mikgnn.dataset"
RESUMED_TAG = "mikgnn.resumed_from"  # the checkpoint an interrupted cell continued from
RERUN = "rerun its command to continue the missing cells"


@dataclass(frozen=True)
class ReproductionJob:
    dataset: str
    processed: dict[int, str]  # seed -> processed dataset URI
    tracking_uri: str
    experiment: str
    storage_path: str
    name: str  # this invocation's name: its Tune experiments and the tag of its runs
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    stall_s: float | None = None
    parent_run_id: str | None = None  # the reproduction's own run, under which its cells' runs nest


def hardware() -> str:
    """The machine a cell ran on, as the report names it next to the paper's GTX 1080 Ti."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} logical CPUs{gpu}"


def cell_tags(cell: Cell, dataset: str) -> dict[str, str]:
    tags = {CELL_TAG: cell.identity, KIND_TAG: "cell", SEED_TAG: str(cell.seed), DATASET_TAG: dataset}
    for slot in cell.slots:
        table, row = slot.split("=", 1)
        tags[TABLE_TAG + table] = row
    return tags


def cell_runs(client: MlflowClient, experiment_id: str, finished: bool = True) -> list:
    """Every FINISHED cell run of the experiment (or, with ``finished=False``, every other one),
    oldest first."""
    return client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'cell' and attributes.status "
                              f"{'=' if finished else '!='} 'FINISHED'", order_by=["attributes.start_time ASC"],
                              max_results=50000)


def finished_cells(tracking_uri: str, experiment: str) -> dict[str, str]:
    """Identity -> run id of every FINISHED cell run of the experiment (the newest per cell)."""
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = cell_runs(client, found.experiment_id)
    return {r.data.tags[CELL_TAG]: r.info.run_id for r in runs if CELL_TAG in r.data.tags}


def interrupted_cells(job: ReproductionJob, todo: list[Cell]) -> dict[str, Resume]:
    """The cells of ``todo`` that continue an interrupted run from its checkpoint (``cell_resume``)."""
    client = MlflowClient(job.tracking_uri)
    found = client.get_experiment_by_name(job.experiment)
    kinds = {c.identity: c.kind for c in todo}
    newest = {}
    for run in cell_runs(client, found.experiment_id, finished=False):  # oldest first
        identity = run.data.tags.get(CELL_TAG)
        if identity in kinds:
            newest[identity] = (kinds[identity], run)
    return resumable(client, newest, job.storage_path, job.name)


def tag_done(tracking_uri: str, done: dict[str, str], cells: list[Cell], dataset: str) -> None:
    """A cell already trained may fill slots of tables this run asks for: tag it with them."""
    client = MlflowClient(tracking_uri)
    for cell in cells:
        client.log_batch(done[cell.identity], tags=[RunTag(k, v) for k, v in cell_tags(cell, dataset).items()])


def cell_params(cell: Cell) -> dict:
    """The MLflow params of a cell's run: its resolved settings, variant, n and h."""
    return {f"model.{k}": v for k, v in asdict(cell.model).items()} | {
        f"train.{k}": v for k, v in asdict(cell.train).items()} | {
        "variant": cell.system.variant, "n": cell.model.n_neighbours, "h": cell.model.hops}


def cell_run_tags(cell: Cell, dataset: str) -> dict[str, str]:
    """The tags a cell's run gets when it opens: the cell's, and the hardware it runs on."""
    return cell_tags(cell, dataset) | {HARDWARE_TAG: hardware()}


def run_cell(config: dict, job: ReproductionJob, cells: tuple[Cell, ...], resume: dict[int, Resume]) -> None:
    """One cell: the training loop in the trial's own process (from the checkpoint of the
    interrupted run it continues, when ``resume`` has one for it)."""
    cell, resumed = cells[config["cell"]], resume.get(config["cell"])
    train_in_trial(loop_config(job.processed[cell.seed], cell.model, cell.train, job.cpus_per_worker)
                   | {"gpu": job.gpus_per_worker > 0, "resume_from": resumed.checkpoint if resumed else None})


def describe_cell(trial, job: ReproductionJob, cells: tuple[Cell, ...], resume: dict[int, Resume]) -> RunSpec:
    """A cell's run: named by its key, tagged with its tables, or the interrupted run it continues."""
    index = trial.config["cell"]
    cell, resumed = cells[index], resume.get(index)
    tags = cell_run_tags(cell, job.dataset) | ({RESUMED_TAG: resumed.checkpoint} if resumed else {})
    return RunSpec(cell.key, cell_params(cell), tags, processed=job.processed[cell.seed],
                   continues=resumed.run_id if resumed else None, history=resumed.history if resumed else ())


def cell_label(trial, cells: tuple[Cell, ...]) -> str:
    return f"cell {cells[trial.config['cell']].key}"


def run_grid(job: ReproductionJob, cells: list[Cell], phase: str, concurrency: int,
             resume: dict[str, Resume]) -> bool:
    """Train ``cells`` as one Tune grid (those in ``resume`` from their checkpoint); False when
    it ended before every trial did (an interrupt, a stalled search), True otherwise, failed
    trials included."""
    if not cells:
        return True
    resources = {"CPU": job.cpus_per_worker} | ({"GPU": job.gpus_per_worker} if job.gpus_per_worker else {})
    by_index = {i: resume[c.identity] for i, c in enumerate(cells) if c.identity in resume}
    trainable = tune.with_resources(tune.with_parameters(run_cell, job=job, cells=tuple(cells), resume=by_index),
                                    resources)
    owner = RunOwner(job.tracking_uri, job.experiment, job.name,
                     partial(describe_cell, job=job, cells=tuple(cells), resume=by_index), parent=job.parent_run_id)
    console = SearchConsole(len(cells), "valid/auc", label=partial(cell_label, cells=tuple(cells)), compare=False)
    config, guard = run_config(f"{job.name}-{phase}", job.storage_path, owner, console, job.stall_s, keep=1)
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search(list(range(len(cells))))},
        tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(max_concurrent=concurrency), reuse_actors=True),
        run_config=config,
    )
    results = fit(tuner, RERUN)  # SearchStopped when Tune's own loop raises: reproduce() ends the runs
    # A trial Tune stops on an interrupt ends TERMINATED too: a cell ended when it failed or
    # reported its final result.
    ended = sum(r.error is not None or bool((r.metrics or {}).get(FINAL)) for r in results)
    return ended >= len(cells) and guard.stalled is None


def reproduce(job: ReproductionJob, cells: tuple[Cell, ...]) -> dict:
    """Train the cells that have no FINISHED run yet; returns what was done and what is missing."""
    client = MlflowClient(job.tracking_uri)
    experiment_id(client, job.experiment, job.tracking_uri)
    client.set_experiment_tag(client.get_experiment_by_name(job.experiment).experiment_id, DATASET_TAG, job.dataset)
    done = finished_cells(job.tracking_uri, job.experiment)
    tag_done(job.tracking_uri, done, [c for c in cells if c.identity in done], job.dataset)
    todo = [c for c in cells if c.identity not in done]
    resume = interrupted_cells(job, todo)
    print(f"{len(cells)} cells: {len(cells) - len(todo)} already in MLflow, {len(todo)} to train"
          + (f" ({len(resume)} continued from their last checkpoint)" if resume else ""), flush=True)
    for cell in todo:
        if cell.identity in resume:
            print(f"  {cell.key}: continues after epoch {resume[cell.identity].epoch}", flush=True)
    concurrency = plan_concurrency(ray.cluster_resources(), 1, job.cpus_per_worker, job.gpus_per_worker,
                                   what="a cell")
    ended, error = True, None
    try:
        for phase, batch, width in (("accuracy", [c for c in todo if c.kind == "accuracy"], concurrency),
                                    ("timing", [c for c in todo if c.kind == "timing"], 1)):
            ended = run_grid(job, batch, phase, width, resume)
            if not ended:
                break
    except KeyboardInterrupt:
        ended = False
    except SearchStopped as exc:
        ended, error = False, str(exc)
    except Exception as exc:  # around the grids (MLflow, the cluster), not in Tune's loop
        ended, error = False, f"the reproduction stopped on {error_line(exc, 600)}; {RERUN}"
    finally:
        end_running(job.tracking_uri, job.experiment, job.name, "KILLED",
                    error or f"the reproduction was interrupted; {RERUN}")
    after = finished_cells(job.tracking_uri, job.experiment)
    missing = [c.key for c in cells if c.identity not in after]
    return {"cells": len(cells), "trained": len(todo) - len(missing), "reused": len(cells) - len(todo),
            "missing": missing, "interrupted": not ended and error is None, "error": error}
