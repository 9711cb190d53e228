"""Train and evaluate one model on one dataset (single process; Table 1 defaults).

Examples:
    python pipelines/train.py --dataset music
    python pipelines/train.py --dataset music --model kgcn --set aggregator=concat --seed 1
    python pipelines/train.py --dataset music --variant fmk --set hops=2
    python pipelines/train.py --dataset movie1m --model mf --set protocol=sampled --set eval_users=100
    python pipelines/train.py --dataset music --workers 2 --set sync_every=4 --set batch_per_worker=true

Settings: the paper's Table 1 for the dataset < --variant < --config FILE < --set and the other
flags; the run prints which layer set each key. Every key (ModelConfig, TrainConfig,
ParallelConfig in mikgnn/config.py) is listed in docs/model.md.

The dataset is prepared first if needed (pipelines/prepare.py). Writes
<output>/metrics.json: validation and test metrics of the best epoch ('valid/auc',
'test/recall@20', ...), the protocol, the seconds of each epoch, and the full configuration;
and <output>/checkpoint/, the best epoch's model (pipelines/recommend.py --checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mikgnn.cli import add_debug_flag, add_download_flag, failure, usage_error
from mikgnn.config import MODELS, VARIANTS, as_dict, check_field_memory
from mikgnn.datasets import DatasetError, get_dataset
from mikgnn.distributed.errors import ClusterStartError, error_line
from mikgnn.experiment import build, fit
from mikgnn.model_store import save_model
from mikgnn.prepare import prepare
from mikgnn.processed import FORMAT_VERSION, load_processed, read_manifest
from mikgnn.redact import redact
from mikgnn.search_space import paper_values
from mikgnn.settings import (
    RUN_SECTIONS,
    Settings,
    check_flags,
    merge_flags,
    parse_overrides,
    resolve_settings,
)
from mikgnn.size_rule import PRESETS, rule_for
from mikgnn.storage import atomic_folder, check_writable, free_mib, resolve
from mikgnn.tracking_uri import TrackingUriError, probe_tracking_uri, sqlite_folder
from mikgnn.training import NonFiniteLoss


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="movie, music, restaurant, movie1m or a custom folder")
    p.add_argument("--model", default="mikgnn", choices=MODELS)
    p.add_argument("--variant", default="mi-kgnn", choices=list(VARIANTS), help="a variant of Tables 5-7 (MI-KGNN)")
    p.add_argument("--preset", choices=PRESETS, help="start from this column of the paper's Table 1 (default: the "
                   "dataset's own; for a custom folder, the size rule of mikgnn/size_rule.py)")
    p.add_argument("--config", type=Path, help="YAML of model / train / parallel keys (mikgnn/settings.py)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="any config key, repeatable: --set hops=2 --set train.lr=0.001 (keys: docs/model.md)")
    p.add_argument("--epochs", type=int, help="max epochs (default: Table 1's 30; early stopping cuts it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split, neighbour tables and training")
    p.add_argument("--data-root", help="raw datasets folder (default: $MIKGNN_DATA_ROOT, else ./data)")
    add_download_flag(p)
    p.add_argument("--processed", help="processed dataset, a folder or URI (default: processed/<dataset>-seed<seed>)")
    p.add_argument("--output", type=Path,
                   help="run folder for metrics.json and the checkpoint (default: runs/<dataset>-<model>-seed<seed>, "
                   "then -2, -3, ... when it holds a run); a folder that holds a finished run is refused")
    p.add_argument("--tracking-uri", help="also log the finished run to this MLflow store (e.g. sqlite:///mlflow.db), "
                   "in the experiment named after the dataset, as a search logs its trials")
    r = p.add_argument_group("Ray Train (data-parallel; leave out --workers for one process without Ray)")
    r.add_argument("--workers", type=int, help="TorchTrainer workers (gloo on CPU, NCCL on GPU)")
    r.add_argument("--gpus-per-worker", type=float, default=0.0)
    r.add_argument("--storage-path", default="ray_results",
                   help="checkpoints and results, a folder or URI (s3://...); shared on a multi-node cluster")
    r.add_argument("--run-name", help="an existing run of that name under --storage-path resumes from its last "
                   "checkpoint (default: a new, time-stamped name)")
    r.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    add_debug_flag(p)
    return p


def settings_from_args(args: argparse.Namespace, manifest: dict | None = None) -> Settings:
    """Table 1 (or --preset's column, or a custom dataset's size rule once its ``manifest`` is
    known) < --variant < --config FILE < --set and the other flags (``mikgnn.settings``)."""
    flags = merge_flags(parse_overrides(args.overrides, RUN_SECTIONS),
                        {"train": {"epochs": args.epochs, "seed": args.seed}})
    return resolve_settings(args.preset or args.dataset, args.model, args.variant, config_file=args.config,
                            flags=flags, base=rule_for(Path(args.dataset).name, args.preset, manifest))


def configs_from_args(args: argparse.Namespace):
    settings = settings_from_args(args)
    return settings.model, settings.train


def _join_cluster(args, processed, parallel) -> None:
    """Connect to Ray; stop now if the cluster cannot hold the workers, or (multi-node) a node
    cannot see the storage."""
    from mikgnn.distributed.autoscaling import room_for_one_run
    from mikgnn.distributed.cluster import connect
    from mikgnn.distributed.shared_storage import check_shared

    connect(args.address)
    room_for_one_run(args.workers, parallel.cpus_per_worker, args.gpus_per_worker, what=f"--workers {args.workers}",
                     flag="--workers")
    check_shared({"--storage-path": resolve(args.storage_path), "--processed": processed})


def _fit_on_ray(args, processed, model_cfg, train_cfg, parallel, run_name: str) -> dict:
    from mikgnn.distributed.ray_workarounds import sigint_kept
    from mikgnn.distributed.trainer import make_trainer

    trainer = make_trainer(processed, model_cfg, train_cfg, workers=args.workers,
                           gpus_per_worker=args.gpus_per_worker, cpus_per_worker=parallel.cpus_per_worker,
                           storage_path=args.storage_path, name=run_name, max_failures=parallel.max_failures,
                           placement_strategy=parallel.placement_strategy, parallel=parallel)
    print(parallel.summary(args.workers, train_cfg.batch_size, bool(args.gpus_per_worker)), flush=True)
    try:
        with sigint_kept():
            result = trainer.fit()
    except SystemExit as exc:  # Ray Train's SIGINT handler (SIGTERM's too, here) aborts the run with
        raise KeyboardInterrupt from exc  # sys.exit: the interrupt, as the one-process path sees it
    metrics = dict(result.metrics)
    metrics["workers"] = args.workers
    metrics["checkpoint"] = result.checkpoint.path if result.checkpoint else None
    return metrics


def _print_settings(args: argparse.Namespace, settings: Settings, manifest: dict) -> None:
    first = f"Table 1's {args.preset} column (--preset)" if args.preset else "Table 1"
    rule = rule_for(Path(args.dataset).name, args.preset, manifest)
    if rule is not None:
        first = "the size rule"
        print(rule.describe(), flush=True)
    print(f"settings ({first} < variant < config file < flag):\n  " + settings.describe().replace("\n", "\n  "),
          flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_flags(args)
        settings = settings_from_args(args)
        check_field_memory(settings.model, settings.train)  # before a byte of it is allocated
    except ValueError as exc:
        return usage_error(exc, args.debug)
    parallel = settings.parallel
    name = Path(args.dataset).name
    try:
        output = _output_folder(args, name)
        check_writable(output, "--output")
        if args.tracking_uri:
            probe_tracking_uri(args.tracking_uri)
            store = sqlite_folder(args.tracking_uri)
            if store is not None:
                check_writable(store, "--tracking-uri")
        if args.workers:
            check_writable(args.storage_path, "--storage-path")
        processed = resolve(args.processed or Path("processed") / f"{name}-seed{args.seed}")
        manifest = read_manifest(processed)
        stale = manifest is None or manifest.get("format_version") != FORMAT_VERSION  # absent, or an older format
        spec = get_dataset(args.dataset, args.data_root) if stale else None
        if spec is not None:
            spec.ensure_present(args.download)  # before any Ray starts
            check_writable(processed, "--processed")
        if args.workers:
            _join_cluster(args, processed, parallel)
        if spec is not None:
            # one process prepares in-process; --workers prepares on Ray
            executor = None
            if args.workers:
                from mikgnn.distributed.prepare import RayExecutor

                executor = RayExecutor(args.address)
            manifest = prepare(spec, processed, args.seed, executor=executor)
        settings = settings_from_args(args, manifest)
        model_cfg, train_cfg = settings.model, settings.train
        _print_settings(args, settings, manifest)
        if train_cfg.threads and not args.workers:
            torch.set_num_threads(train_cfg.threads)
        exp = None if args.workers else build(load_processed(processed), model_cfg, train_cfg)  # Ray: workers load
    except ClusterStartError as exc:
        return failure(exc, args.debug)
    except (DatasetError, TrackingUriError, ValueError) as exc:
        return usage_error(exc, args.debug)
    started_ms = int(time.time() * 1000)

    def report(epoch: int, m: dict) -> None:
        line = (f"epoch {epoch:3d}  loss {m['train/loss']:.4f}  {m['train/seconds']:.2f}s  "
                f"valid auc {m['valid/auc']:.4f}")
        if "valid/recall@20" in m:  # not on the epochs topk_every skips
            line += f"  R@20 {m['valid/recall@20']:.4f}"
        if "attention_entropy" in m:  # the attention models' diagnostics (docs/model.md)
            line += (f"  att.entropy {m['attention_entropy']:.4f} (distinct neighbours "
                     f"{m.get('attention_entropy_distinct', float('nan')):.4f})  norms item "
                     f"{m.get('item_norm', float('nan')):.2g} neighbour {m.get('neighbour_norm', float('nan')):.2g}")
        print(line, flush=True)
        if "warning" in m:
            print(f"warning: {m['warning']}", file=sys.stderr, flush=True)

    run_name = args.run_name or f"{name}-{args.model}-seed{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    start = time.perf_counter()
    try:
        if args.workers:
            result = _fit_on_ray(args, processed, model_cfg, train_cfg, parallel, run_name)
        else:
            result = fit(exp, train_cfg, report)  # the model now holds the best epoch's weights
            for warning in result["warnings"]:
                if warning.startswith("not converged"):
                    print(f"warning: {warning}", file=sys.stderr, flush=True)
    except NonFiniteLoss as exc:  # nothing is written: a diverged run has no result
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM once on Ray (cluster.sigterm_as_interrupt)
        print(f"interrupted after {time.perf_counter() - start:.0f} s: no result written "
              f"({output / 'metrics.json'} is written when a run completes)", file=sys.stderr)
        if args.workers:
            print(f"rerun with --run-name {run_name} to continue from its last checkpoint", file=sys.stderr)
        return 130
    protocol = {"ctr": "AUC and F1@0.5 over every row of the split",
                "topk": ("full ranking: every user with a positive row in the split, candidates = all items "
                         "without a training row") if train_cfg.protocol == "full" else
                        f"sampled: {train_cfg.eval_users} users (seed {train_cfg.seed}), KGCN protocol"}
    result.update(dataset=name, model=args.model, variant=args.variant, protocol=protocol,
                  wall_seconds=time.perf_counter() - start,
                  config={"model": as_dict(model_cfg), "train": as_dict(train_cfg), "origin": settings.origin}
                  | ({"parallel": as_dict(parallel), "workers": args.workers} if args.workers else {}),
                  manifest={k: v for k, v in manifest.items() if k != "raw_sha256"})
    print(json.dumps({k: round(v, 4) for k, v in result.items() if k.startswith("test/")}, indent=1))
    try:
        _write_run(output, result, None if args.workers else exp.model, model_cfg, train_cfg, processed)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        print(f"error: --output {output}: the run could not be written ({error_line(exc, 300)}; "
              f"{free_mib(output):,.0f} MiB free); nothing of it was left there, its test metrics are above",
              file=sys.stderr)
        return 1
    print(f"best epoch {result['best_epoch']}; wrote {output / 'metrics.json'}")
    if args.tracking_uri:
        run_id = _log_to_mlflow(args, name, run_name, result, model_cfg, train_cfg, processed.uri, started_ms)
        print(f"MLflow: run {run_id} in experiment '{name}' at {redact(args.tracking_uri)}")
    return 0


def _write_run(output: Path, result: dict, model, model_cfg, train_cfg, processed) -> None:
    """metrics.json and (one process) the best epoch's weights, written whole or not at all: a
    full disk or a lost write leaves no truncated state.pt behind (``storage.atomic_folder``)."""
    if model is not None:
        result["checkpoint"] = str(output / "checkpoint")
    with atomic_folder(resolve(output), "metrics.json") as stage:
        if model is not None:
            save_model(Path(stage.path) / "checkpoint", model, model_cfg, train_cfg, processed)
        (Path(stage.path) / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")


def _output_folder(args: argparse.Namespace, name: str) -> Path:
    """--output, refused when it holds a finished run; else the first of runs/<name>-<model>-seed<s>,
    -2, -3, ... that holds none: a rerun never overwrites an earlier one."""
    if args.output is not None:
        if (args.output / "metrics.json").exists():
            raise ValueError(f"--output {args.output} already holds a finished run ({args.output / 'metrics.json'}); "
                             "choose another folder")
        return args.output
    base = Path("runs") / f"{name}-{args.model}-seed{args.seed}"
    return next(folder for folder in (base, *(Path(f"{base}-{k}") for k in range(2, 10_000)))
                if not (folder / "metrics.json").exists())


def _log_to_mlflow(args, name: str, run_name: str, result: dict, model_cfg, train_cfg, processed: str,
                   started_ms: int) -> str:
    """The finished run in MLflow (``tracking.log_training_run``); a Ray Train run's epochs and
    weights are read from its last checkpoint, where Ray Train wrote it."""
    from mikgnn.distributed.tracking import log_training_run

    params = paper_values(model_cfg, train_cfg) | {"dataset": name, "model": args.model, "variant": args.variant,
                                                   "d": model_cfg.dim, "loss": train_cfg.loss,
                                                   "workers": args.workers or 1}

    def log(folder: str, result: dict) -> str:
        return log_training_run(args.tracking_uri, name, run_name, params, result["config"], result, folder,
                                processed, result["manifest"], started_ms)

    if not args.workers:
        return log(result["checkpoint"], result)
    from ray.train import Checkpoint

    from mikgnn.distributed.train_loop import STATE_JSON

    with Checkpoint(result["checkpoint"]).as_directory() as folder:
        history = json.loads((Path(folder) / STATE_JSON).read_text())["history"]
        return log(folder, result | {"history": history})


if __name__ == "__main__":
    raise SystemExit(main())
