"""Ray Tune over θ, n, h, λ and lr: every trial is one MLflow run.

A trial of one worker (the default) trains in the trial's own process
(``distributed.session.TrialSession``); a trial of several workers drives a TorchTrainer.

Resources (SPEC-free, measured here): Ray Data reads, Train workers and trial drivers share
the CPUs. A trial that drives a TorchTrainer asks a fraction of a CPU for itself, one logical
CPU stays free for Ray Data, and the number of concurrent trials is derived from what the
cluster reports, so a default run cannot wait forever for a CPU.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from functools import partial

import ray
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator

from mikgnn.config import ModelConfig, ParallelConfig, SearchConfig, TrainConfig
from mikgnn.distributed.cluster import TRIAL_DRIVER_CPU, plan_concurrency
from mikgnn.distributed.console import SearchConsole
from mikgnn.distributed.errors import error_line
from mikgnn.distributed.run_owner import RunOwner, RunSpec, end_running
from mikgnn.distributed.search_driver import SearchStopped, count_ended, fit, run_config
from mikgnn.distributed.tracking import (
    FAILURE_TAG,
    close_search_run,
    compared,
    has_checkpoint,
    open_search_run,
    trial_runs,
)
from mikgnn.distributed.train_loop import FINAL, loop_config, train_in_trial
from mikgnn.distributed.trainer import make_trainer
from mikgnn.distributed.trials_report import log_trials_report
from mikgnn.processed import read_split_table
from mikgnn.search_space import SearchSpace, apply_params, check_sampler, fit_field, paper_values, start_point
from mikgnn.storage import Location

K = 20
METRIC = f"valid/recall@{K}"


@dataclass(frozen=True)
class TuneJob:
    """A search: what it searches (``space`` around ``model`` and ``train``), how (``search``,
    whose ``experiment`` and ``name`` are resolved), on what (``parallel``, ``workers_per_trial``,
    ``gpus_per_worker``), and where it records (``tracking_uri``, ``storage_path``)."""

    processed: Location
    space: SearchSpace
    model: ModelConfig
    train: TrainConfig
    search: SearchConfig
    tracking_uri: str
    storage_path: Location
    command: str
    num_samples: int = 8
    workers_per_trial: int = 1
    gpus_per_worker: float = 0.0
    parallel: ParallelConfig = ParallelConfig()
    settings: str = ""  # Settings.describe(): each fixed key and the layer that set it
    dataset: str = ""

    @property
    def experiment(self) -> str:
        return self.search.experiment

    @property
    def name(self) -> str:
        return self.search.name


def tune_domains(space: SearchSpace) -> dict:
    out = {}
    for d in space.dimensions:
        if d.kind == "grid":
            out[d.name] = tune.grid_search(list(d.values))
        elif d.kind == "choice":
            out[d.name] = tune.choice(list(d.values))
        elif d.kind == "loguniform":
            out[d.name] = tune.loguniform(d.low, d.high)
        else:
            out[d.name] = tune.uniform(d.low, d.high)
    return out


PAPER_NAMES = ("theta", "n", "h", "lambda", "lr")  # the keys of search_space.paper_values


def searched_names(space: SearchSpace) -> list[str]:
    """The searched values' names in a trial's params: the paper's five (a ``field`` is n and h),
    then a baseline's own searched keys."""
    return [*PAPER_NAMES, *(d.name for d in space.dimensions if d.name not in PAPER_NAMES and d.name != "field")]


def search_params(job: TuneJob) -> dict:
    """The search run's params: how it searched, and on what."""
    return {"space": str(job.space.source), "search": job.search.search, "scheduler": job.search.scheduler,
            "trials": job.num_samples * job.space.grid_size, "dataset": job.dataset, "model": job.model.model,
            "epochs": job.train.epochs, "workers_per_trial": job.workers_per_trial}


def trial_params(config: dict, model: ModelConfig, train: TrainConfig, job: TuneJob) -> dict:
    """A trial's MLflow params, few enough to compare at a glance: the searched values under the
    paper's names (θ, n, h, λ, lr; a baseline's own searched keys under theirs), a log10
    companion of each searched over decades (λ's axis is unreadable without one), and the
    dataset, model, loss and d. Every setting: the run's settings.json."""
    paper = paper_values(model, train)
    searched = paper | {name: config[name] for name in searched_names(job.space)[len(PAPER_NAMES):]}
    log10 = {f"log10_{d.name}": round(math.log10(searched[d.name]), 4) for d in job.space.dimensions
             if d.kind == "loguniform" and isinstance(searched.get(d.name), (int, float)) and searched[d.name] > 0}
    return searched | log10 | {"dataset": job.dataset, "model": model.model, "loss": train.loss, "d": model.dim}


def describe_trial(trial: Trial, job: TuneJob) -> RunSpec:
    """A trial's run: its name, params and settings, and a tag when the receptive field was
    adjusted to fit ``max_field``."""
    model, train = apply_params(job.model, job.train, trial.config)
    fitted = fit_field(model, job.search.max_field)
    settings = {"model": asdict(fitted), "train": asdict(train), "parallel": asdict(job.parallel),
                "workers_per_trial": job.workers_per_trial, "gpus_per_worker": job.gpus_per_worker}
    tags = {} if fitted == model else {
        "field_adjusted": f"n^h = {model.n_neighbours ** model.hops} > max_field {job.search.max_field}: trained "
                          "with the receptive-field adjustment (FMK r), n entities per hop"}
    return RunSpec(str(trial), trial_params(trial.config, fitted, train, job), tags, processed=job.processed.uri,
                   settings=settings)


def run_trial(params: dict, job: TuneJob, train_table: tuple[ray.ObjectRef] | None = None) -> None:
    """One Tune trial: the loop in this process for one worker, else a TorchTrainer reporting
    to Tune. It only reports; the driver's ``RunOwner`` logs to MLflow."""
    model, train = apply_params(job.model, job.train, params)
    model = fit_field(model, job.search.max_field)
    if job.workers_per_trial == 1:
        train_in_trial(loop_config(job.processed.uri, model, train, job.parallel.cpus_per_worker)
                       | {"gpu": job.gpus_per_worker > 0})
    else:
        make_trainer(job.processed, model, train, workers=job.workers_per_trial,
                     gpus_per_worker=job.gpus_per_worker, cpus_per_worker=job.parallel.cpus_per_worker,
                     storage_path=job.storage_path / job.name / "train", name=tune.get_context().get_trial_id(),
                     callbacks=[TuneReportCallback()], placement_strategy=job.parallel.placement_strategy,
                     parallel=job.parallel, train_table=train_table[0] if train_table else None).fit()


ORPHAN_REASON = ("its search's driver stopped without ending it (killed); the resumed search continued only the "
                 "trials Tune had recorded")


INTERRUPTED = "the search was interrupted before this trial finished; --resume {name} continues it"


def trial_resources(job: TuneJob) -> dict:
    """What Tune reserves for one trial: its one worker, or a driver for its TorchTrainer."""
    if job.workers_per_trial > 1:
        return {"CPU": TRIAL_DRIVER_CPU}
    return {"CPU": job.parallel.cpus_per_worker} | ({"GPU": job.gpus_per_worker} if job.gpus_per_worker else {})


def run_search(job: TuneJob, resume: bool = False):
    """Run (or resume) the search; returns Tune's ResultGrid."""
    concurrency = plan_concurrency(ray.cluster_resources(), job.workers_per_trial, job.parallel.cpus_per_worker,
                                   job.gpus_per_worker)
    if job.search.max_concurrent is not None:
        concurrency = min(concurrency, job.search.max_concurrent)
    # A search of TorchTrainers reads the train split once, by the driver, into Ray's object
    # store: each trial's workers then take their rows of it without a read of their own
    # (about 6 s a trial on music, measured). ray.put runs no task, so the search's start waits
    # for no CPU (ray.data.from_arrow would: a one-CPU metadata task, left waiting forever on a
    # cluster whose CPUs another job holds). A one-worker trial reads its own split.
    # In a tuple: with_parameters resolves a top-level ObjectRef to its value, a nested one not.
    train_table = (ray.put(read_split_table(job.processed, "train")),) if job.workers_per_trial > 1 else None
    trainable = tune.with_resources(tune.with_parameters(run_trial, job=job, train_table=train_table),
                                    trial_resources(job))
    path = (job.storage_path / job.name).uri
    restored = _restored(job, path, trainable) if resume and tune.Tuner.can_restore(path) else None
    # opened once Tune's state is known to be readable: a refused --resume leaves the run as it was
    search_run_id = open_search_run(job.tracking_uri, job.experiment, job.name, job.command, job.space.as_dict(),
                                    job.settings, search_params(job))
    if restored is not None:
        # A driver killed outright (SIGKILL, a lost machine) ended none of its trials' runs. Tune
        # resumes the trials of its last snapshot, each re-opening its run; a trial started after
        # that snapshot is not resumed, and its run ends here, KILLED, instead of RUNNING forever.
        end_running(job.tracking_uri, job.experiment, job.name, "KILLED", ORPHAN_REASON)
        tuner = restored
    else:
        owner = RunOwner(job.tracking_uri, job.experiment, job.name, partial(describe_trial, job=job),
                         parent=search_run_id, logs=None if job.search.diagnostics else partial(compared, k=K))
        # One checkpoint a trial, its newest: Tune registers a checkpoint only once it is written,
        # and each holds the best epoch's weights too (train_loop._save). At movie scale a
        # checkpoint is tens of MB; keeping 2 took 45 MB of an 8-trial music search's 57 (2026-12-07).
        console = SearchConsole(job.num_samples * job.space.grid_size, METRIC)
        config, _ = run_config(job.name, job.storage_path.uri, owner, console, job.search.stall_timeout or None,
                               keep=1)
        tuner = tune.Tuner(
            trainable,
            param_space=tune_domains(job.space),
            # reuse_actors: a trial's process serves the next trial, so torch, MLflow's store
            # and matplotlib are imported once per slot, not once per trial (about 3 s a trial
            # on 2 cores, docs/benchmarks.md). A trial stopped mid-epoch is not reused: Tune
            # waits 2 s for its thread, then starts a fresh actor as before.
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", num_samples=job.num_samples,
                                        search_alg=_search_alg(job, concurrency), scheduler=_scheduler(job),
                                        max_concurrent_trials=None if job.search.search == "random" else concurrency,
                                        reuse_actors=True),
            run_config=config,
        )
    try:
        results = fit(tuner, f"--resume {job.name} continues it")
    except SearchStopped as exc:
        end_running(job.tracking_uri, job.experiment, job.name, "KILLED", str(exc))
        close_search_run(job.tracking_uri, search_run_id, {}, status="FAILED", reason=str(exc))
        raise
    except BaseException:
        end_running(job.tracking_uri, job.experiment, job.name, "KILLED", INTERRUPTED.format(name=job.name))
        close_search_run(job.tracking_uri, search_run_id, {}, status="KILLED")
        raise
    stalled = MlflowClient(job.tracking_uri).get_run(search_run_id).data.tags.get(FAILURE_TAG)
    summary = summarize(results, job.num_samples * job.space.grid_size, stalled)
    status = "FINISHED" if summary["complete"] else "FAILED" if summary["failure"] else "KILLED"
    summary["search_run_id"] = search_run_id
    if status == "FINISHED":
        summary["model"] = _log_best_model(job, search_run_id, summary["trial_id"])
    # what Tune stopped on its way out (an interrupt, a stall) ends with the reason
    end_running(job.tracking_uri, job.experiment, job.name, "KILLED", INTERRUPTED.format(name=job.name)
                if status == "KILLED" else summary["failure"] or "the trial ended without its final report")
    client = MlflowClient(job.tracking_uri)
    log_trials_report(client, search_run_id, client.get_run(search_run_id).info.experiment_id, job.name,
                      searched_names(job.space), {d.name for d in job.space.dimensions if d.kind == "loguniform"},
                      METRIC)
    if not job.search.diagnostics:
        summary["metrics"] = {k: v for k, v in summary["metrics"].items() if compared(k, K)}
    close_search_run(job.tracking_uri, search_run_id, summary, status=status, reason=summary["failure"])
    return results, summary


def _restored(job: TuneJob, path: str, trainable) -> tune.Tuner:
    """The Tuner of an earlier search from its state in ``path``; a ValueError naming the folder
    when that state cannot be read (damaged, or written by another Ray)."""
    try:
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    except Exception as exc:
        what = f"--resume {job.name}: Tune's state in {path} cannot be read ({error_line(exc, 300)})"
        raise ValueError(f"{what}; nothing was changed: start a new search (without --resume), or move that "
                         "folder away") from None


def _log_best_model(job: TuneJob, search_run_id: str, trial_id: str | None) -> str | None:
    """The best trial as a pyfunc model on its own run, registered under the experiment's name
    (``serving.log_best_model``), and the search run's description linking that run; None,
    with the reason printed, when it cannot be logged."""
    from mikgnn.distributed.serving import log_best_model

    client = MlflowClient(job.tracking_uri)
    experiment = client.get_experiment_by_name(job.experiment).experiment_id
    runs = trial_runs(client, experiment, trial_id) if trial_id else []
    if runs:
        client.set_tag(search_run_id, "mlflow.note.content",
                       f"Best trial: [{runs[0].info.run_name}](#/experiments/{experiment}/runs/{runs[0].info.run_id})"
                       f" (trial {trial_id}), by {METRIC}.")
    if not runs or not has_checkpoint(client, runs[0].info.run_id):
        print(f"no model logged: the best trial {trial_id} left no checkpoint (it did not finish)", file=sys.stderr)
        return None
    try:
        return log_best_model(job.tracking_uri, runs[0].info.run_id, job.processed, job.experiment)
    except Exception as exc:  # the search's result stands; the model is an extra
        print(f"no model logged: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def summarize(results, num_samples: int, stalled: str | None = None) -> dict:
    """The search's outcome: its best trial with real metrics, and why it failed if it did
    (``stalled``: the watchdog's reason, if it stopped the search)."""
    scored = [r for r in results if r.metrics and isinstance(r.metrics.get(METRIC), (int, float))
              and math.isfinite(r.metrics[METRIC])]
    failure = stalled
    if failure is None and not scored and len(results):
        failure = f"all {len(results)} trial(s) failed before reporting {METRIC}"
    done = count_ended(results) >= num_samples
    summary = {"complete": done and failure is None, "failure": failure, "errors": results.num_errors,
               "trial_id": None, "params": {}, "metrics": {}}
    if scored:
        best = best_result(scored)
        summary.update(trial_id=best.metrics.get("trial_id"), params=best.config,
                       metrics={k: v for k, v in best.metrics.items()
                                if k.startswith(("valid/", "test/")) and isinstance(v, (int, float))})
    return summary


def best_result(scored: list) -> object:
    """The search's best trial: the best of those that trained to their end (their final report,
    whose model is logged and served), else of all. A trial ASHA stopped at a rung reports its
    metric at that epoch, and can lead one that went on to converge and reported its best
    epoch's; it left no model to serve."""
    finished = [r for r in scored if r.metrics.get(FINAL)]
    return max(finished or scored, key=lambda r: r.metrics[METRIC])


def _search_alg(job: TuneJob, concurrency: int):
    """Optuna (TPE) or random search; either evaluates Table 1's point first when the space
    holds it (``search_space.start_point``). Random search caps its own concurrency: Tune
    ignores ``max_concurrent_trials`` for it, and would otherwise start a trial on every CPU,
    the one kept for Ray Data included."""
    check_sampler(job.space, job.search.search)
    start = start_point(job.space, job.model, job.train) if job.space.grid_size == 1 else None  # a sweep has it
    points = [start] if start else None
    if job.search.search == "random":
        return BasicVariantGenerator(points_to_evaluate=points, max_concurrent=concurrency)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study created

    return OptunaSearch(metric=METRIC, mode="max", seed=job.train.seed, points_to_evaluate=points)


def _scheduler(job: TuneJob):
    if job.search.scheduler == "fifo":
        return FIFOScheduler()
    # A trial reports every epoch and once more at the end (epochs + 1 reports). max_t lies
    # beyond that, so a trial that trains to the end is never stopped by its last report:
    # Tune would kill it while its Train controller shuts down, which can leak a placement
    # group (placement.py). ASHA's rungs below max_t still stop the weak trials.
    return ASHAScheduler(time_attr="training_iteration", max_t=job.train.epochs + 2,
                         grace_period=min(3, job.train.epochs), reduction_factor=2)

