"""The main job: search θ, n, h, λ and the learning rate with Ray Tune; every trial trains with
Ray Train and is one MLflow run.

Examples:
    python pipelines/tune.py --dataset music
    python pipelines/tune.py --dataset movie --num-samples 32 --workers-per-trial 2 --gpus-per-worker 1
    python pipelines/tune.py --dataset music --resume                 # continue the latest search
    mlflow ui --backend-store-uri sqlite:///mlflow.db                 # then compare the trials

The search space is tune_spaces/<dataset>.yaml (or --space); the other hyperparameters are
the paper's Table 1. Defaults: Optuna TPE, ASHA, local Ray, MLflow in ./mlflow.db.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mikgnn.config import TRANSFORMS  # noqa: E402
from mikgnn.datasets import DatasetError, get_dataset  # noqa: E402
from mikgnn.search_space import MAX_FIELD, SearchSpaceError, load_space  # noqa: E402
from mikgnn.settings import Settings, resolve_settings  # noqa: E402
from mikgnn.storage import Location, resolve  # noqa: E402
from mikgnn.tracking_uri import TrackingUriError, probe_tracking_uri  # noqa: E402

MIN_STALL_S, STALL_FACTOR = 600.0, 10.0  # as mikgnn.distributed.watchdog
# A search's own defaults (a layer of mikgnn.settings): shorter trials, sampled top-K users.
SEARCH_DEFAULTS = {"train": {"epochs": 20, "protocol": "sampled", "eval_users": 500}}

REPO = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="movie, music, restaurant, movie1m or a custom folder")
    p.add_argument("--data-root", help="raw datasets folder (default: $MIKGNN_DATA_ROOT, else ./data)")
    p.add_argument("--processed", help="processed dataset, a folder or URI such as s3://bucket/processed/movie "
                   "(default: processed/<dataset>-seed<seed>); built once, by this driver, when absent")
    p.add_argument("--space", type=Path, help="search space YAML (default: tune_spaces/<dataset>.yaml)")
    p.add_argument("--num-samples", type=int, default=8, help="trials (default 8)")
    p.add_argument("--search", choices=("optuna", "random"), default="optuna", help="default: Optuna TPE")
    p.add_argument("--scheduler", choices=("asha", "fifo"), default="asha")
    p.add_argument("--max-concurrent", type=int, help="cap on concurrent trials (default: what the cluster fits)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers per trial")
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--config", type=Path, help="YAML of the fixed (not searched) model / train / parallel keys "
                   "(mikgnn/settings.py); precedence: Table 1 < search defaults < --config < flags")
    p.add_argument("--sync-every", type=int,
                   help="with several workers per trial: 1 averages gradients every step; K > 1 is local SGD, "
                   "parameters averaged every K steps")
    p.add_argument("--batch-per-worker", action="store_true", default=None,
                   help="each worker steps on the full Table 1 batch (global batch = workers x batch)")
    p.add_argument("--overlap", action="store_true", default=None,
                   help="with several workers per trial and --sync-every 1: exchange gradients while the next "
                   "step computes, applied one step late")
    p.add_argument("--placement-strategy", choices=("PACK", "SPREAD"), default="PACK",
                   help="where a trial's workers go: packed on few nodes (default) or spread over nodes")
    p.add_argument("--epochs", type=int, help=f"max epochs per trial (default {SEARCH_DEFAULTS['train']['epochs']}; "
                   "early stopping and ASHA cut it)")
    p.add_argument("--eval-users", type=int,
                   help="users sampled (seeded) for each trial's top-K metrics (default "
                   f"{SEARCH_DEFAULTS['train']['eval_users']}); 0 = full ranking of every user")
    p.add_argument("--transform", choices=TRANSFORMS,
                   help="Eq. 16's W1, W2, b: fixed to I, I, 0 (identity, the default) or trained (learned, "
                   "the paper)")
    p.add_argument("--max-field", type=int, default=MAX_FIELD,
                   help=f"a trial whose receptive field n^h exceeds this many entities is trained with the "
                   f"receptive-field adjustment (FMK r) instead of the full field (default {MAX_FIELD})")
    p.add_argument("--stall-timeout", type=float, default=0.0,
                   help="stop a trial, or the search, that reports nothing for this many seconds; 0 (default): "
                   f"{STALL_FACTOR:g}x the longest wait between two epochs so far, at least {MIN_STALL_S:g} s")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///./mlflow.db)")
    p.add_argument("--experiment", help="MLflow experiment (default: the dataset name)")
    p.add_argument("--storage-path", default="ray_results",
                   help="Tune/Train results and checkpoints, a folder or URI (s3://bucket/results). On a "
                   "multi-node cluster it must be shared: a local path that a node does not see is an error")
    p.add_argument("--name", help="search name (default: <dataset>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the search --name, else the latest one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    return p


def _search_name(args, dataset: str, storage: Location) -> str:
    if args.name:
        return args.name
    if args.resume:
        found = sorted((c for c in storage.children() if c.name.startswith(f"{dataset}-")),
                       key=lambda c: c.mtime())
        if found:
            return found[-1].name
        raise SystemExit(f"error: --resume: no earlier search of {dataset} under {args.storage_path}")
    return f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


# flag -> (is the value allowed, what it must be); checked before Ray or MLflow start
_FLAG_RULES = {
    "num_samples": (lambda v: v >= 1, "an integer >= 1"),
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "workers_per_trial": (lambda v: v >= 1, "an integer >= 1"),
    "cpus_per_worker": (lambda v: v > 0, "a number > 0"),
    "gpus_per_worker": (lambda v: v >= 0, "a number >= 0"),
    "max_concurrent": (lambda v: v is None or v >= 1, "an integer >= 1"),
    "eval_users": (lambda v: v >= 0, "an integer >= 0 (0 = every user)"),
    "max_field": (lambda v: v >= 1, "an integer >= 1"),
    "stall_timeout": (lambda v: v >= 0, "a number of seconds >= 0 (0 = derived from the epoch times)"),
    "sync_every": (lambda v: v >= 1, "an integer >= 1"),
    "seed": (lambda v: v >= 0, "an integer >= 0"),
}


def check_flags(args: argparse.Namespace) -> None:
    for name, (allowed, must) in _FLAG_RULES.items():
        value = getattr(args, name)
        if value is None:  # not given: the settings' default
            continue
        if not allowed(value) or (isinstance(value, float) and value != value):
            raise ValueError(f"--{name.replace('_', '-')} = {value}: must be {must}")


def settings_from_args(args: argparse.Namespace, dataset: str) -> Settings:
    """The fixed settings of every trial; the search space then sets θ, n, h, λ and lr."""
    train = {"epochs": args.epochs, "seed": args.seed}
    if args.eval_users is not None:
        train |= {"protocol": "sampled", "eval_users": args.eval_users} if args.eval_users else {"protocol": "full"}
    flags = {"model": {"transform": args.transform}, "train": train,
             "parallel": {"sync_every": args.sync_every, "batch_per_worker": args.batch_per_worker,
                          "overlap": args.overlap}}
    return resolve_settings(dataset, config_file=args.config, flags=flags, job_defaults=SEARCH_DEFAULTS)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = Path(args.dataset).name
    try:
        check_flags(args)
        settings = settings_from_args(args, dataset)
        space = load_space(args.space or REPO / "tune_spaces" / f"{dataset}.yaml")
        spec = get_dataset(args.dataset, args.data_root)
        if args.tracking_uri:
            probe_tracking_uri(args.tracking_uri)
    except (SearchSpaceError, DatasetError, TrackingUriError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("fixed settings (Table 1 < search defaults < config file < flag):\n  "
          + settings.describe().replace("\n", "\n  "), flush=True)
    from mikgnn.distributed.cluster import connect
    from mikgnn.distributed.prepare import prepare
    from mikgnn.distributed.shared_storage import check_shared
    from mikgnn.distributed.tracking import default_tracking_uri, local_store_folder
    from mikgnn.distributed.tuner import TuneJob, plan_concurrency, run_search

    connect(args.address)
    try:
        import ray

        plan_concurrency(ray.cluster_resources(), args.workers_per_trial, args.cpus_per_worker, args.gpus_per_worker)
        processed = resolve(args.processed or Path("processed") / f"{dataset}-seed{args.seed}")
        storage = resolve(args.storage_path)
        tracking_uri = args.tracking_uri or default_tracking_uri()
        store = local_store_folder(tracking_uri)
        check_shared({"--storage-path": storage, "--processed": processed}
                     | ({"--tracking-uri": resolve(store)} if store else {}))
        prepare(spec, processed, args.seed, address=args.address)
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    job = TuneJob(
        processed=processed, space=space, model=settings.model, train=settings.train,
        experiment=args.experiment or dataset, tracking_uri=tracking_uri,
        storage_path=storage, name=_search_name(args, dataset, storage),
        command=shlex.join([sys.executable, *sys.argv]), num_samples=args.num_samples, search=args.search,
        scheduler=args.scheduler, max_concurrent=args.max_concurrent, workers_per_trial=args.workers_per_trial,
        gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker, max_field=args.max_field,
        placement_strategy=args.placement_strategy,
        parallel=settings.parallel, stall_s=args.stall_timeout or None,
    )
    try:
        _, best = run_search(job, resume=args.resume)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if best["errors"]:
        print(f"{best['errors']} trial(s) failed; their MLflow runs are FAILED with a 'failure_reason' tag",
              file=sys.stderr)
    if best["failure"]:
        print(f"error: the search failed: {best['failure']}", file=sys.stderr)
        if not best["params"]:
            return 1
    elif not best["complete"]:
        print(f"search interrupted; continue it with: python pipelines/tune.py --dataset {args.dataset} "
              f"--resume --name {job.name}")
    print("best configuration" + ("" if best["complete"] else " so far") + ":", json.dumps(best["params"]))
    print(json.dumps({k: round(v, 4) for k, v in sorted(best["metrics"].items())
                      if k.startswith(("valid/", "test/")) and "@" in k or k.endswith("auc")}, indent=1))
    print(f"MLflow: experiment '{job.experiment}' at {job.tracking_uri}; search '{job.name}'")
    return 1 if best["failure"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
