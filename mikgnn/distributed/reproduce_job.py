"""A reproduction's cells as Ray Tune grids: every cell one trial, one MLflow run.

The accuracy cells run as one grid, as many at once as the cluster fits (``plan_concurrency``);
the timing cells (Table 7) then run as a second grid, one at a time, so that no other trial
shares the machine while an epoch is timed. Each run is tagged with its cell's identity and
the table slots it fills (``mikgnn.table.<N>``), which is all ``report.py`` reads.

A reproduction is a search like any other, named by its experiment and the cells it asks for
(``reproduction_name``), so that rerunning the same command is its ``--resume``: Tune's own
``Tuner.restore`` continues each interrupted cell from its last checkpoint, in the same trial
and so the same MLflow run. A cell whose identity already has a FINISHED run is not trained
again; one that failed (or that a restored grid no longer holds) trains again from epoch 1, in
a new run of a fresh grid.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import asdict, dataclass
from functools import partial

import ray
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.search import BasicVariantGenerator

from mikgnn.distributed.cluster import plan_concurrency
from mikgnn.distributed.console import SearchConsole
from mikgnn.distributed.errors import error_line
from mikgnn.distributed.run_owner import RunOwner, RunSpec, end_running
from mikgnn.distributed.search_driver import SearchStopped, count_ended, fit, run_config
from mikgnn.distributed.tracking import DRIVER_TAG, KIND_TAG, experiment_id, ready_store, running_searches
from mikgnn.distributed.train_loop import loop_config, train_in_trial
from mikgnn.reproduction.cells import Cell
from mikgnn.storage import resolve

CELL_TAG = "mikgnn.cell"  # the cell's identity (cells.Cell.identity)
TABLE_TAG = "mikgnn.table."  # + table number: the row (and n or h) the run fills in that table
SEED_TAG = "mikgnn.seed"
HARDWARE_TAG = "mikgnn.hardware"
DATASET_TAG = "mikgnn.dataset"
RERUN = "rerun its command to continue the missing cells"
ORPHAN_REASON = "its reproduction's driver stopped without ending it (killed); rerun continues what Tune recorded"


@dataclass(frozen=True)
class ReproductionJob:
    dataset: str
    processed: dict[int, str]  # seed -> processed dataset URI
    tracking_uri: str
    experiment: str
    storage_path: str
    name: str  # the reproduction's name (``reproduction_name``): its Tune experiments and the tag of its runs
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


def running_driver(tracking_uri: str, experiment: str, name: str) -> str | None:
    """The driver (host:pid:start) of reproduction ``name`` when one still runs it on this host."""
    client = MlflowClient(ready_store(tracking_uri))
    found = client.get_experiment_by_name(experiment)
    runs = running_searches(client, found.experiment_id, name) if found is not None else []
    return next((run.data.tags[DRIVER_TAG] for run, alive in runs if alive), None)


def reproduction_name(experiment: str, cells: tuple[Cell, ...]) -> str:
    """The same experiment and cells, the same name: a rerun of a command restores its grids."""
    digest = hashlib.sha256("\n".join(sorted(c.identity for c in cells)).encode()).hexdigest()[:10]
    return f"{experiment}-{digest}"


def run_cell(config: dict, job: ReproductionJob, cells: dict[str, Cell]) -> None:
    """One cell: the training loop in the trial's own process (from its last checkpoint when
    Tune restores the trial)."""
    cell = cells[config["cell"]]
    train_in_trial(loop_config(job.processed[cell.seed], cell.model, cell.train, job.cpus_per_worker)
                   | {"gpu": job.gpus_per_worker > 0})


def describe_cell(trial, job: ReproductionJob, cells: dict[str, Cell]) -> RunSpec:
    """A cell's run: named by its key, tagged with its tables."""
    cell = cells[trial.config["cell"]]
    return RunSpec(cell.key, cell_params(cell), cell_run_tags(cell, job.dataset), processed=job.processed[cell.seed])


def cell_label(trial, cells: dict[str, Cell]) -> str:
    return f"cell {cells[trial.config['cell']].key}"


def trial_folder(trial) -> str:
    return f"cell_{trial.trial_id}"


def run_grid(job: ReproductionJob, cells: dict[str, Cell], todo: list[Cell], phase: str, concurrency: int) -> bool:
    """Train ``todo`` as one Tune grid, continuing this phase's earlier grid first when an
    interruption left one (``Tuner.restore``); False when it ended before every trial did (an
    interrupt, a stalled search), True otherwise, failed trials included."""
    if not todo:
        return True
    resources = {"CPU": job.cpus_per_worker} | ({"GPU": job.gpus_per_worker} if job.gpus_per_worker else {})
    trainable = tune.with_resources(tune.with_parameters(run_cell, job=job, cells=cells), resources)
    path = resolve(job.storage_path) / f"{job.name}-{phase}"
    if tune.Tuner.can_restore(path.uri):
        # Cells it had not ended continue; finished and failed ones stay as they are (a
        # failed cell trains again below, from epoch 1: what made it fail may be in its state).
        # Tune gives the grid back its callbacks, the run owner among them, which re-opens the
        # runs of the trials it continues. A driver killed outright ended none of its runs: a
        # run no restored trial re-opens stays KILLED, and its cell trains again below.
        end_running(job.tracking_uri, job.experiment, job.name, "KILLED", ORPHAN_REASON)
        print(f"continuing {path.name}: Tune restores its unfinished cells from their last checkpoints", flush=True)
        results = fit(tune.Tuner.restore(path.uri, trainable=trainable, resume_unfinished=True), RERUN)
        if count_ended(results) < len(results):
            return False
        done = finished_cells(job.tracking_uri, job.experiment)
        todo = [c for c in todo if c.identity not in done]
        if not todo:
            return True
        path.delete()  # every trial of it ended, its results in MLflow: a fresh grid takes its name
    owner = RunOwner(job.tracking_uri, job.experiment, job.name, partial(describe_cell, job=job, cells=cells),
                     parent=job.parent_run_id)
    console = SearchConsole(len(todo), "valid/auc", label=partial(cell_label, cells=cells), compare=False)
    config, guard = run_config(path.name, job.storage_path, owner, console, job.stall_s, keep=1)
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search([c.identity for c in todo])},
        tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(max_concurrent=concurrency), reuse_actors=True,
                                    trial_dirname_creator=trial_folder),
        run_config=config,
    )
    results = fit(tuner, RERUN)  # SearchStopped when Tune's own loop raises: reproduce() ends the runs
    return count_ended(results) >= len(todo) and guard.stalled is None


def reproduce(job: ReproductionJob, cells: tuple[Cell, ...]) -> dict:
    """Train the cells that have no FINISHED run yet; returns what was done and what is missing."""
    client = MlflowClient(job.tracking_uri)
    experiment_id(client, job.experiment, job.tracking_uri)
    client.set_experiment_tag(client.get_experiment_by_name(job.experiment).experiment_id, DATASET_TAG, job.dataset)
    done = finished_cells(job.tracking_uri, job.experiment)
    tag_done(job.tracking_uri, done, [c for c in cells if c.identity in done], job.dataset)
    todo = [c for c in cells if c.identity not in done]
    by_identity = {c.identity: c for c in cells}
    print(f"{len(cells)} cells: {len(cells) - len(todo)} already in MLflow, {len(todo)} to train", flush=True)
    concurrency = plan_concurrency(ray.cluster_resources(), 1, job.cpus_per_worker, job.gpus_per_worker,
                                   what="a cell")
    ended, error = True, None
    try:
        for phase, batch, width in (("accuracy", [c for c in todo if c.kind == "accuracy"], concurrency),
                                    ("timing", [c for c in todo if c.kind == "timing"], 1)):
            ended = run_grid(job, by_identity, batch, phase, width)
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
