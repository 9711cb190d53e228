"""Reproduce the paper's Tables 2-9 on one dataset: every cell a Ray Tune trial and an MLflow run.

Examples:
    python pipelines/reproduce.py --dataset music                       # Tables 2-9, seeds 0, 1, 2
    python pipelines/reproduce.py --dataset music --tables 5,8,9 --seeds 0
    python pipelines/reproduce.py --dataset movie1m --set max_field=4096 --gpus-per-worker 0.25   # on GPUs
    python pipelines/report.py --experiment reproduce-music             # then the report

A cell is a system (a model, or a variant of MI-KGNN) at a seed, with n or h where its table
sweeps them; two tables that need the same run share it. Accuracy cells train as
docs/results.md does (each model's own defaults over Table 1, early stopping on validation AUC
with patience 5, at most 40 epochs, full-ranking top-K); Table 7's timing cells train
--timing-epochs epochs each, one at a time, and record seconds per training epoch on the
machine they ran on. Rerunning the same command trains only the cells that have no FINISHED
run in the experiment: it is the reproduction's resume (Tune restores its grid), so an
interrupted cell (Ctrl-C, SIGTERM, a killed driver) continues from its last checkpoint in its
own run, and a failed one trains again from epoch 1; a change of --set makes new cells.
Cells whose receptive field n^h exceeds max_field are left out and shown as such in the
report (a full h = 4 field takes minutes an epoch on a CPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mikgnn.cli import add_debug_flag, add_download_flag, failure, typed_command, usage_error
from mikgnn.config import MAX_FIELD, MODELS, SearchConfig
from mikgnn.datasets import DatasetError, get_dataset
from mikgnn.redact import redact
from mikgnn.reproduction.cells import TIMING_EPOCHS, plan
from mikgnn.reproduction.tables import TABLES, parse_tables
from mikgnn.settings import ConfigError, parse_overrides
from mikgnn.tracking_uri import TrackingUriError, probe_tracking_uri


def _ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(dict.fromkeys(int(p) for p in text.split(",") if p.strip()))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected integers separated by commas, e.g. 0,1,2") from None
    if not values or min(values) < 0:
        raise ValueError(f"{flag} {text!r}: expected integers >= 0 separated by commas, e.g. 0,1,2")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="music, movie1m, movie, restaurant or a custom folder")
    p.add_argument("--tables", default=",".join(map(str, TABLES)), help="the paper's tables (default 2,...,9)")
    p.add_argument("--seeds", default="0,1,2", help="seeds of the splits and the runs (default 0,1,2: the paper "
                   "averages 3 runs)")
    p.add_argument("--models", help="only these models' rows, comma-separated (default: every system)")
    p.add_argument("--epochs", type=int, help="max epochs of an accuracy cell (default 40, with early stopping)")
    p.add_argument("--timing-epochs", type=int, default=TIMING_EPOCHS,
                   help=f"epochs of a Table 7 cell (default {TIMING_EPOCHS}); the report takes their median")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="a model / train key for every cell (--set device=cuda), or a search key as tune.py "
                   f"takes it: max_field (leave out cells whose receptive field n^h is larger; default {MAX_FIELD}) "
                   "and experiment (MLflow; default reproduce-<dataset>)")
    p.add_argument("--data-root", help="raw datasets folder (default: $MIKGNN_DATA_ROOT, else ./data)")
    add_download_flag(p)
    p.add_argument("--processed-root", default="processed",
                   help="where processed/<dataset>-seed<s> are (built once when absent)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///./mlflow.db)")
    p.add_argument("--storage-path", default="ray_results", help="Tune's results folder or URI")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per cell (e.g. 0.25: 4 cells a GPU)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    add_debug_flag(p)
    return p


def _search_keys(keys: dict) -> SearchConfig:
    """The search keys a reproduction takes (max_field, experiment), checked as a search checks them."""
    other = sorted(set(keys) - {"max_field", "experiment"})
    if other:
        raise ConfigError(f"--set {other[0]}: a reproduction takes the search keys max_field and experiment only")
    return SearchConfig(**keys)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = Path(args.dataset).name
    try:
        tables = parse_tables(args.tables)
        seeds = _ints("--seeds", args.seeds)
        models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
        unknown = sorted(set(models or ()) - set(MODELS))
        if unknown:
            raise ValueError(f"--models: unknown {unknown}: choose from {list(MODELS)}")
        for flag, value in (("--epochs", args.epochs), ("--timing-epochs", args.timing_epochs)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} = {value}: must be >= 1")
        overrides = parse_overrides(args.overrides, ("model", "train", "search"))
        search = _search_keys(overrides.pop("search", {}))
        the_plan = plan(dataset, tables, seeds, overrides, models, args.epochs, args.timing_epochs, search.max_field)
        if not the_plan.cells:
            raise ValueError(f"nothing to run: tables {list(tables)} have no cell for models {list(models or [])}")
        spec = get_dataset(args.dataset, args.data_root)
        spec.ensure_present(args.download)
        if args.tracking_uri:
            probe_tracking_uri(args.tracking_uri)
    except (ConfigError, DatasetError, TrackingUriError, ValueError) as exc:
        return usage_error(exc, args.debug)
    experiment = search.experiment or f"reproduce-{dataset}"
    for slot, reason in the_plan.skipped:
        if "--models" not in reason:
            print(f"table {slot}: {reason}", file=sys.stderr)
    left_out = sum("--models" in reason for _, reason in the_plan.skipped)
    if left_out:
        print(f"{left_out} table rows left out by --models", file=sys.stderr)

    from mikgnn.distributed.autoscaling import room_for_one_run
    from mikgnn.distributed.cluster import connect
    from mikgnn.distributed.errors import ClusterStartError
    from mikgnn.distributed.prepare import prepare
    from mikgnn.distributed.reproduce_job import ReproductionJob, reproduce, reproduction_name, running_driver
    from mikgnn.distributed.tracking import close_search_run, default_tracking_uri, open_search_run
    from mikgnn.storage import resolve

    try:
        connect(args.address)
    except ClusterStartError as exc:
        return failure(exc, args.debug)
    processed = {s: resolve(Path(args.processed_root) / f"{dataset}-seed{s}") for s in seeds}
    try:
        room_for_one_run(1, ReproductionJob.cpus_per_worker, args.gpus_per_worker, what="a cell")
        for seed, location in processed.items():
            prepare(spec, location, seed, address=args.address)
    except (DatasetError, ValueError) as exc:
        return usage_error(exc, args.debug)
    tracking_uri = args.tracking_uri or default_tracking_uri()
    name = reproduction_name(experiment, the_plan.cells)
    driver = running_driver(tracking_uri, experiment, name)
    if driver is not None:
        return usage_error(ValueError(f"the same reproduction ({name}) is running now, driven by process "
                                      f"{driver.rsplit(':', 2)[1]}: wait for it, or stop it and rerun"), args.debug)
    command = redact(typed_command())
    layout = {"tables": list(tables), "seeds": list(seeds), "cells": [c.identity for c in the_plan.cells],
              "skipped": dict(the_plan.skipped)}
    run_id = open_search_run(tracking_uri, experiment, name, command, layout)
    job = ReproductionJob(dataset=dataset, processed={s: loc.uri for s, loc in processed.items()},
                          tracking_uri=tracking_uri, experiment=experiment, storage_path=resolve(args.storage_path).uri,
                          name=name, gpus_per_worker=args.gpus_per_worker, parent_run_id=run_id)
    try:
        outcome = reproduce(job, the_plan.cells)
    except BaseException:
        close_search_run(tracking_uri, run_id, {}, status="KILLED")
        raise
    status = "FINISHED" if not outcome["missing"] else "KILLED" if outcome["interrupted"] else "FAILED"
    missing = f"{len(outcome['missing'])} cell(s) have no finished run"
    reason = None if status == "FINISHED" else outcome["error"] or missing
    if outcome["error"]:
        print(f"error: {outcome['error']}", file=sys.stderr)
    close_search_run(tracking_uri, run_id, {}, status=status, reason=reason)
    print(f"{outcome['cells']} cells: {outcome['reused']} reused, {outcome['trained']} trained, "
          f"{len(outcome['missing'])} missing")
    print(f"MLflow: experiment '{experiment}' at {redact(tracking_uri)}")
    if outcome["missing"]:
        print("missing: " + ", ".join(outcome["missing"][:20]) + (" ..." if len(outcome["missing"]) > 20 else ""),
              file=sys.stderr)
        print("rerun the same command to train only the missing cells", file=sys.stderr)
        return 130 if outcome["interrupted"] else 1
    uri = "" if args.tracking_uri is None else f" --tracking-uri {redact(tracking_uri)}"
    print(f"report: python pipelines/report.py --experiment {experiment}{uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
