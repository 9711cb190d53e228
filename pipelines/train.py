"""Train and evaluate one model on one dataset (single process; Table 1 defaults).

Examples:
    python pipelines/train.py --dataset music
    python pipelines/train.py --dataset music --model kgcn --kgcn-aggregator concat --seed 1
    python pipelines/train.py --dataset music --variant fmk --hops 2
    python pipelines/train.py --dataset movie1m --model mf --protocol sampled --eval-users 100

The dataset is prepared first if needed (pipelines/prepare.py). Writes
<output>/metrics.json: validation and test metrics of the best epoch ('valid/auc',
'test/recall@20', ...), the protocol, the seconds of each epoch, and the full configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mikgnn.config import (  # noqa: E402
    AGGREGATORS,
    KGCN_AGGREGATORS,
    MODELS,
    PROTOCOLS,
    TRANSFORMS,
    VARIANTS,
    as_dict,
)
from mikgnn.datasets import DatasetError, get_dataset  # noqa: E402
from mikgnn.experiment import build, fit  # noqa: E402
from mikgnn.prepare import prepare  # noqa: E402
from mikgnn.processed import load_processed, read_manifest  # noqa: E402
from mikgnn.settings import Settings, resolve_settings  # noqa: E402
from mikgnn.storage import resolve  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="movie, music, restaurant, movie1m or a custom folder")
    p.add_argument("--model", default="mikgnn", choices=MODELS)
    p.add_argument("--data-root", help="raw datasets folder (default: $MIKGNN_DATA_ROOT, else ./data)")
    p.add_argument("--processed", help="processed dataset, a folder or URI (default: processed/<dataset>-seed<seed>)")
    p.add_argument("--output", type=Path,
                   help="run folder for metrics.json (default: runs/<dataset>-<model>-seed<seed>)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split, neighbour tables and training")
    p.add_argument("--config", type=Path, help="YAML of model / train / parallel keys (mikgnn/settings.py); "
                   "precedence: Table 1 < --variant < --config < flags")
    g = p.add_argument_group("model (defaults: the paper's Table 1 for the dataset; every other key of "
                             "ModelConfig / TrainConfig, e.g. logits, init_std, l2_mode, in --config)")
    g.add_argument("--variant", default="mi-kgnn", choices=list(VARIANTS), help="a variant of Tables 5-7")
    g.add_argument("--kgcn-aggregator", default="sum", choices=KGCN_AGGREGATORS)
    g.add_argument("--dim", type=int)
    g.add_argument("--n-neighbours", "-n", type=int)
    g.add_argument("--hops", type=int)
    g.add_argument("--theta", type=float)
    g.add_argument("--aggregator", choices=AGGREGATORS, help="override the aggregator")
    g.add_argument("--transform", choices=TRANSFORMS,
                   help="Eq. 16's W1, W2, b: fixed to I, I, 0 (identity: MI-KGNN's default) or trained "
                   "(learned: the paper, and the KGCN baselines' default)")
    t = p.add_argument_group("training")
    t.add_argument("--lr", type=float)
    t.add_argument("--l2", type=float, help="λ")
    t.add_argument("--ls-weight", type=float, help="β, label smoothness (default: Table 1 for kgcn-ls, else 0)")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--patience", type=int)
    t.add_argument("--select-metric", help="validation metric of early stopping and of the best epoch: auc (default), "
                   "f1, recall@K or ndcg@K for a K of --ks (2, 10, 20, 50, 100)")
    t.add_argument("--protocol", choices=PROTOCOLS, help="top-K users: full (every test user) or sampled")
    t.add_argument("--eval-users", type=int, help="users sampled by --protocol sampled (KGCN: 100)")
    t.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    r = p.add_argument_group("Ray Train (data-parallel; leave out --workers for one process)")
    r.add_argument("--workers", type=int, help="number of TorchTrainer workers (gloo on CPU, NCCL on GPU)")
    r.add_argument("--gpus-per-worker", type=float, default=0.0)
    r.add_argument("--cpus-per-worker", type=float, default=1.0)
    r.add_argument("--storage-path", default="ray_results",
                   help="Ray Train checkpoints and results, a folder or URI (s3://...); shared on a multi-node cluster")
    r.add_argument("--placement-strategy", choices=("PACK", "SPREAD"), default="PACK",
                   help="workers packed on few nodes (default) or spread over nodes")
    r.add_argument("--sync-every", type=int,
                   help="1: average gradients every step (synchronous SGD on the global batch); K > 1: local SGD, "
                   "average the parameters every K steps and at each epoch's end (much less communication)")
    r.add_argument("--batch-per-worker", action="store_true", default=None,
                   help="each worker steps on --batch-size rows (global batch W x batch) instead of batch / W")
    r.add_argument("--overlap", action="store_true", default=None,
                   help="with --sync-every 1: exchange a step's gradients while the next step computes, "
                   "and apply them one step late (hides the communication latency)")
    r.add_argument("--max-failures", type=int, default=3, help="worker-group restarts from the last checkpoint")
    r.add_argument("--run-name", help="Ray Train run name; an existing run of that name under --storage-path "
                   "resumes from its last checkpoint (default: a new, time-stamped name)")
    r.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Table 1 < --variant < --config FILE < flags (``mikgnn.settings``)."""
    model = dict(dim=args.dim, n_neighbours=args.n_neighbours, hops=args.hops, theta=args.theta,
                 aggregator=args.aggregator, transform=args.transform)
    train = dict(lr=args.lr, l2=args.l2, batch_size=args.batch_size, epochs=args.epochs,
                 patience=args.patience, protocol=args.protocol, select_metric=args.select_metric,
                 eval_users=args.eval_users, ls_weight=args.ls_weight, seed=args.seed)
    parallel = dict(sync_every=args.sync_every, batch_per_worker=args.batch_per_worker, overlap=args.overlap)
    return resolve_settings(args.dataset, args.model, args.variant, args.kgcn_aggregator, args.config,
                            {"model": model, "train": train, "parallel": parallel})


def configs_from_args(args: argparse.Namespace):
    settings = settings_from_args(args)
    return settings.model, settings.train


def _join_cluster(args, processed) -> None:
    """Connect to Ray; on a multi-node cluster, stop now if a node cannot see the storage."""
    from mikgnn.distributed.cluster import connect
    from mikgnn.distributed.shared_storage import check_shared

    connect(args.address)
    check_shared({"--storage-path": resolve(args.storage_path), "--processed": processed})


def _fit_on_ray(args, processed, model_cfg, train_cfg, parallel, name: str) -> dict:
    from mikgnn.distributed.trainer import make_trainer

    run_name = args.run_name or f"{name}-{args.model}-seed{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    trainer = make_trainer(processed, model_cfg, train_cfg, workers=args.workers,
                           gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                           storage_path=args.storage_path, name=run_name, max_failures=args.max_failures,
                           placement_strategy=args.placement_strategy, parallel=parallel)
    result = trainer.fit()
    metrics = dict(result.metrics)
    metrics["workers"] = args.workers
    metrics["checkpoint"] = result.checkpoint.path if result.checkpoint else None
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model_cfg, train_cfg, parallel = settings.model, settings.train, settings.parallel
    print("settings (Table 1 < variant < config file < flag):\n  " + settings.describe().replace("\n", "\n  "),
          flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = Path(args.dataset).name
    try:
        processed = resolve(args.processed or Path("processed") / f"{name}-seed{args.seed}")
        if args.workers:
            _join_cluster(args, processed)
        manifest = read_manifest(processed)
        if manifest is None:  # one process prepares in-process; --workers prepares on Ray
            executor = None
            if args.workers:
                from mikgnn.distributed.prepare import RayExecutor

                executor = RayExecutor(args.address)
            manifest = prepare(get_dataset(args.dataset, args.data_root), processed, args.seed, executor=executor)
        exp = None if args.workers else build(load_processed(processed), model_cfg, train_cfg)  # Ray: workers load
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = args.output or Path("runs") / f"{name}-{args.model}-seed{args.seed}"

    def report(epoch: int, m: dict) -> None:
        print(f"epoch {epoch:3d}  loss {m['train/loss']:.4f}  {m['train/seconds']:.2f}s  "
              f"valid auc {m['valid/auc']:.4f}  R@20 {m['valid/recall@20']:.4f}  "
              f"att.entropy {m.get('attention_entropy', float('nan')):.4f} "
              f"(distinct neighbours {m.get('attention_entropy_distinct', float('nan')):.4f})  "
              f"norms item {m.get('item_norm', float('nan')):.2g} "
              f"neighbour {m.get('neighbour_norm', float('nan')):.2g}", flush=True)

    start = time.perf_counter()
    if args.workers:
        result = _fit_on_ray(args, processed, model_cfg, train_cfg, parallel, name)
    else:
        result = fit(exp, train_cfg, report)
    protocol = {"ctr": "AUC and F1@0.5 over every row of the split",
                "topk": ("full ranking: every user with a positive row in the split, candidates = all items "
                         "without a training row") if train_cfg.protocol == "full" else
                        f"sampled: {train_cfg.eval_users} users (seed {train_cfg.seed}), KGCN protocol"}
    result.update(dataset=name, model=args.model, variant=args.variant, protocol=protocol,
                  wall_seconds=time.perf_counter() - start,
                  config={"model": as_dict(model_cfg), "train": as_dict(train_cfg), "origin": settings.origin}
                  | ({"parallel": as_dict(parallel), "workers": args.workers} if args.workers else {}),
                  manifest={k: v for k, v in manifest.items() if k != "raw_sha256"})
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / "metrics.json.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(output / "metrics.json")
    print(json.dumps({k: round(v, 4) for k, v in result.items() if k.startswith("test/")}, indent=1))
    print(f"best epoch {result['best_epoch']}; wrote {output / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
