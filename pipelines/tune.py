"""The main job: search θ, n, h, λ and the learning rate with Ray Tune; every trial trains
(one worker in its own process, --workers N with Ray Train) and is one MLflow run.

Examples:
    python pipelines/tune.py --dataset music
    python pipelines/tune.py --dataset movie --num-samples 32 --workers 2 --gpus-per-worker 1
    python pipelines/tune.py --dataset music --resume                 # continue the latest search
    python pipelines/tune.py --dataset music --set scheduler=fifo --set protocol=full
    mlflow ui --backend-store-uri sqlite:///mlflow.db                 # then compare the trials

The search space is tune_spaces/<dataset>.yaml (or --space); the other hyperparameters are
the paper's Table 1 < the search's defaults (top-K on 500 sampled users) <
--config FILE < --set and the other flags. The search's own keys (--set KEY=VALUE): search
(optuna | random), scheduler (asha | fifo), max_concurrent, max_field (n^h above it: trained
with FMK r), stall_timeout (the watchdog's bound, s), experiment (MLflow; default the dataset),
diagnostics (true: a trial's run logs every metric, not only the ~20 compared).
Defaults: Optuna TPE, ASHA, local Ray, MLflow in ./mlflow.db.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

from mikgnn.cli import add_debug_flag, add_download_flag, failure, typed_command, usage_error
from mikgnn.config import MODELS, TrainConfig
from mikgnn.datasets import DatasetError, get_dataset
from mikgnn.processed import read_manifest
from mikgnn.redact import redact, split_credentials
from mikgnn.search_space import SearchSpaceError, check_sampler, load_space, space_file
from mikgnn.settings import (
    SECTIONS,
    Settings,
    check_flags,
    merge_flags,
    parse_overrides,
    resolve_settings,
)
from mikgnn.size_rule import PRESETS, rule_for
from mikgnn.storage import Location, check_writable, resolve
from mikgnn.tracking_uri import TrackingUriError, probe_tracking_uri, sqlite_folder

# A search's own defaults (a layer of mikgnn.settings): shorter trials, sampled top-K users.
SEARCH_DEFAULTS = {"train": {"protocol": "sampled", "eval_users": 500}}

REPO = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="movie, music, restaurant, movie1m or a custom folder")
    p.add_argument("--model", default="mikgnn", choices=MODELS,
                   help="the model searched (default mikgnn); a baseline searches tune_spaces/model-<name>.yaml")
    p.add_argument("--num-samples", type=int, default=8, help="trials (default 8)")
    p.add_argument("--epochs", type=int, help=f"max epochs per trial (default {TrainConfig.epochs}; "
                   "early stopping and ASHA cut it)")
    p.add_argument("--space", type=Path, help="search space YAML (default: tune_spaces/<dataset>.yaml)")
    p.add_argument("--preset", choices=PRESETS, help="fixed settings from this column of the paper's Table 1 "
                   "(default: the dataset's own; for a custom folder, the size rule of mikgnn/size_rule.py)")
    p.add_argument("--config", type=Path, help="YAML of the fixed (not searched) model / train / parallel / search "
                   "keys (mikgnn/settings.py)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="any config key, repeatable: --set scheduler=fifo --set transform=learned "
                   "(keys: docs/model.md)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split and of the sampler")
    p.add_argument("--data-root", help="raw datasets folder (default: $MIKGNN_DATA_ROOT, else ./data)")
    add_download_flag(p)
    p.add_argument("--processed", help="processed dataset, a folder or URI such as s3://bucket/processed/movie "
                   "(default: processed/<dataset>-seed<seed>); built once, by this driver, when absent")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///./mlflow.db)")
    p.add_argument("--storage-path", default="ray_results",
                   help="Tune/Train results and checkpoints, a folder or URI (s3://bucket/results). On a "
                   "multi-node cluster it must be shared: a local path that a node does not see is an error")
    p.add_argument("--resume", nargs="?", const="", metavar="NAME",
                   help="continue the search NAME under --storage-path (without NAME: the latest one)")
    r = p.add_argument_group("cluster")
    r.add_argument("--workers", type=int, default=1, help="Ray Train workers per trial (default 1: the trial "
                   "trains in its own process; more: a data-parallel TorchTrainer)")
    r.add_argument("--gpus-per-worker", type=float, default=0.0)
    r.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    add_debug_flag(p)
    return p


def _search_name(args, name: str, dataset: str, storage: Location) -> str:
    """The search to run: --resume NAME (which must exist), else --resume's latest search of
    the dataset, else the search's name key, else a new time-stamped name."""
    if args.resume is None:
        # the time, and a random tag: two searches started in the same second never share a name
        return name or f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    found = sorted((c for c in storage.children() if (c / "tuner.pkl").exists()), key=lambda c: c.mtime())
    wanted = args.resume or name
    if wanted:
        if wanted not in {c.name for c in found}:
            raise ValueError(f"--resume {wanted}: no such search under --storage-path {args.storage_path}; "
                             f"the searches there: {[c.name for c in found] or 'none'}")
        return wanted
    ours = [c for c in found if c.name.startswith(f"{dataset}-")]
    if not ours:
        raise ValueError(f"--resume: no earlier search of {dataset} under --storage-path {args.storage_path}")
    return ours[-1].name


def _credentials_to_environment(uri: str) -> str:
    """A tracking URI with user-info: the credentials go to MLflow's environment variables
    (inherited by the trials of a local Ray; on a cluster, set them on the nodes) and the URI
    the search records, pickles and logs holds none."""
    bare, user, password = split_credentials(uri)
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password or ""
    return bare


def settings_from_args(args: argparse.Namespace, dataset: str, manifest: dict | None = None) -> Settings:
    """The fixed settings of every trial (the search space then sets θ, n, h, λ and lr) and of
    the search itself; a custom dataset's start from its size rule once its ``manifest`` is known."""
    flags = merge_flags(parse_overrides(args.overrides), {"train": {"epochs": args.epochs, "seed": args.seed}})
    return resolve_settings(args.preset or dataset, args.model, config_file=args.config, flags=flags,
                            job_defaults=SEARCH_DEFAULTS, sections=tuple(SECTIONS),
                            base=rule_for(dataset, args.preset, manifest))


def _check_destinations(args: argparse.Namespace, dataset: str, storage: Location) -> None:
    """Every folder the search writes, writable before it starts: Tune's results, the MLflow
    store, and the processed dataset when it is still to be built."""
    check_writable(storage, "--storage-path")
    store = sqlite_folder(args.tracking_uri)
    if store is not None:
        check_writable(store, "--tracking-uri")
    processed = resolve(args.processed or Path("processed") / f"{dataset}-seed{args.seed}")
    if read_manifest(processed) is None:
        check_writable(processed, "--processed")


def _free_port() -> int:
    """A loopback port free now, for the printed serve command (MLflow's default 5000 is its UI's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the console is the search's
    args = build_parser().parse_args(argv)
    dataset = Path(args.dataset).name
    try:
        check_flags(args)
        settings = settings_from_args(args, dataset)
        if settings.train.topk_every != 1:
            raise ValueError(f"topk_every {settings.train.topk_every}: a search compares and stops its trials "
                             "on the validation Recall@20 of every epoch, so topk_every must be 1")
        spec = get_dataset(args.dataset, args.data_root)
        spec.ensure_present(args.download)  # the search prepares the raw files on Ray: refuse before
        path, generic = (args.space, False) if args.space else space_file(REPO / "tune_spaces", dataset, args.model)
        space = load_space(path)
        check_sampler(space, settings.search.search)
        storage = resolve(args.storage_path)
        name = _search_name(args, settings.search.name, dataset, storage)
        if args.tracking_uri:
            probe_tracking_uri(args.tracking_uri)
        _check_destinations(args, dataset, storage)
        tracking_uri = _credentials_to_environment(args.tracking_uri) if args.tracking_uri else None
    except (SearchSpaceError, DatasetError, TrackingUriError, ValueError) as exc:
        return usage_error(exc, args.debug)
    print(f"search space: {path}" + (f" (the generic one: no space ships for {dataset!r}; --space FILE "
                                     "overrides it)" if generic else ""), flush=True)
    from mikgnn.distributed.autoscaling import room_for_one_run
    from mikgnn.distributed.cluster import connect
    from mikgnn.distributed.console import trial_table
    from mikgnn.distributed.errors import ClusterStartError
    from mikgnn.distributed.prepare import prepare
    from mikgnn.distributed.search_driver import SearchStopped
    from mikgnn.distributed.shared_storage import check_shared
    from mikgnn.distributed.tracking import default_tracking_uri
    from mikgnn.distributed.tuner import METRIC, TuneJob, run_search

    try:
        connect(args.address)
    except ClusterStartError as exc:
        return failure(exc, args.debug)
    try:
        room_for_one_run(args.workers, settings.parallel.cpus_per_worker, args.gpus_per_worker)
        processed = resolve(args.processed or Path("processed") / f"{dataset}-seed{args.seed}")
        tracking_uri = tracking_uri or default_tracking_uri()
        # MLflow is written by the driver alone (run_owner): a store only it sees will do
        check_shared({"--storage-path": storage, "--processed": processed})
        manifest = prepare(spec, processed, args.seed, address=args.address)
        rule = rule_for(dataset, args.preset, manifest)
        if rule is not None:  # a custom folder: its fixed settings start from the size rule, not Table 1
            settings = settings_from_args(args, dataset, manifest)
            print(rule.describe(), flush=True)
    except (DatasetError, ValueError) as exc:
        return usage_error(exc, args.debug)
    base = "the size rule" if rule is not None else "Table 1"
    print(f"fixed settings ({base} < search defaults < config file < flag):\n  "
          + settings.describe().replace("\n", "\n  "), flush=True)
    parallel, search = settings.parallel, settings.search
    job = TuneJob(
        processed=processed, space=space, model=settings.model, train=settings.train,
        search=replace(search, experiment=search.experiment or dataset, name=name), tracking_uri=tracking_uri,
        storage_path=storage, command=redact(typed_command()), num_samples=args.num_samples,
        workers_per_trial=args.workers, gpus_per_worker=args.gpus_per_worker, parallel=parallel,
        settings=settings.describe(), dataset=dataset,
    )
    try:
        results, best = run_search(job, resume=args.resume is not None)
    except ValueError as exc:
        return usage_error(exc, args.debug)
    except SearchStopped as exc:  # its runs are ended with the reason; exit 1, not a usage error
        usage_error(exc, args.debug)
        return 1
    if best["errors"]:
        print(f"{best['errors']} trial(s) failed; their MLflow runs are FAILED with a 'failure_reason' tag",
              file=sys.stderr)
    if best["failure"]:
        print(f"error: the search failed: {best['failure']}", file=sys.stderr)
        if not best["params"]:
            return 1
    elif not best["complete"]:
        print(f"search interrupted; continue it with: python pipelines/tune.py --dataset {args.dataset} "
              f"--resume {job.name}")
    print("\n".join(trial_table(results, METRIC, tuple(d.name for d in space.dimensions))))
    print("best configuration" + ("" if best["complete"] else " so far") + ":", json.dumps(best["params"]))
    shown = [k for k in ("valid/recall@20", "valid/auc", "test/recall@20", "test/ndcg@20", "test/auc")
             if k in best["metrics"]]
    print("its metrics: " + ", ".join(f"{k} {best['metrics'][k]:.4f}" for k in shown) + " (every one: its MLflow run)")
    print(f"MLflow: experiment '{job.experiment}' at {redact(job.tracking_uri)}; search '{job.name}'")
    if best.get("model"):
        print(f"best model: {best['model']} (registered as '{job.experiment}' where the store has a registry); "
              f"serve it: mlflow models serve -m models:/{job.experiment}/latest --host 127.0.0.1 "
              f"--port {_free_port()} --env-manager local")
        print(f"recommendations of its best trial: python pipelines/recommend.py --run {best['search_run_id']} "
              f"--k 100 --output recs/{dataset}")
    if best["failure"]:
        return 1
    return 0 if best["complete"] else 130  # interrupted: not a completed search


if __name__ == "__main__":
    raise SystemExit(main())
