"""Top-K recommendations for every user (or a list of users) of a trained model, as Parquet.

Examples:
    python pipelines/recommend.py --checkpoint runs/music-mikgnn-seed0/checkpoint --k 100 --output recs/music
    python pipelines/recommend.py --run RUN_ID --k 20 --users users.txt --output s3://bucket/recs --explain
    python pipelines/recommend.py --run SEARCH_RUN_ID --k 100 --output recs/best --concurrency 4 --num-gpus 0.25

--run takes an MLflow run of the tracking store (a trial, or a search, meaning its best
trial) and reads its best_checkpoint artifact; --checkpoint a folder written by train.py
(<output>/checkpoint) or a Ray checkpoint. Rows: user, rank (1 = best), item, score (the
logit), and with --explain the reason, all in the dataset's original ids; a user's training
items are never recommended (--keep-seen: they may be). The output folder or URI appears whole
or not at all, and must not exist yet. Unknown user ids are listed and the others served.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from mikgnn.cli import add_debug_flag, failure, usage_error
from mikgnn.model_store import CheckpointError, load_trained
from mikgnn.recommend import Recommendations, resolve_users
from mikgnn.redact import redact
from mikgnn.storage import check_writable, resolve


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="an MLflow run id: a trial, or a search (its best trial)")
    source.add_argument("--checkpoint", type=Path, help="a checkpoint folder (state.pt + config.json)")
    p.add_argument("--k", type=int, default=100, help="items per user (default 100)")
    p.add_argument("--users", type=Path, help="a text file of original user ids, one a line (default: every user)")
    p.add_argument("--output", required=True, help="a folder or URI that does not exist yet")
    p.add_argument("--explain", action="store_true", help="add each item's most weighted KG neighbours (MI-KGNN)")
    p.add_argument("--keep-seen", action="store_true", help="allow the items a user has in training")
    p.add_argument("--tracking-uri", help="MLflow tracking URI of --run (default: sqlite:///./mlflow.db)")
    p.add_argument("--processed", help="the processed dataset, where it is not where the model was trained")
    r = p.add_argument_group("Ray Data")
    r.add_argument("--batch-users", type=int, default=256, help="users per block (memory: block x items scores)")
    r.add_argument("--concurrency", type=int, default=1, help="model actors")
    r.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per actor")
    r.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    add_debug_flag(p)
    return p


def _check(args: argparse.Namespace) -> None:
    for name, value, low in (("--k", args.k, 1), ("--batch-users", args.batch_users, 1),
                             ("--concurrency", args.concurrency, 1)):
        if value < low:
            raise ValueError(f"{name} = {value}: must be an integer >= {low}")
    if args.num_gpus < 0:
        raise ValueError(f"--num-gpus = {args.num_gpus}: must be >= 0")
    if resolve(args.output).exists():
        raise ValueError(f"--output {redact(args.output)} exists already: choose a new folder (nothing is overwritten)")
    check_writable(args.output, "--output")
    if args.users is not None and not args.users.is_file():
        raise ValueError(f"--users {args.users}: no such file")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as downloads:
        try:
            _check(args)
            from mikgnn.distributed.recommend_job import checkpoint_of_run
            from mikgnn.distributed.tracking import default_tracking_uri, existing_store

            tracking_uri = existing_store(args.tracking_uri or default_tracking_uri()) if args.run else ""
            run_id, checkpoint = (checkpoint_of_run(tracking_uri, args.run, Path(downloads)) if args.run
                                  else (None, args.checkpoint))
            trained = load_trained(checkpoint, args.processed)
            Recommendations(trained, args.k, args.keep_seen, args.explain)  # k and --explain, checked now
            requested = None
            if args.users is not None:
                requested = [line.strip() for line in args.users.read_text().splitlines() if line.strip()]
            users = resolve_users(requested, trained.ids["users"])
            if users.unknown:
                shown = ", ".join(users.unknown[:10]) + (" …" if len(users.unknown) > 10 else "")
                print(f"warning: {len(users.unknown)} user id(s) of {args.users} are not in the dataset and get no "
                      f"rows: {shown}", file=sys.stderr)
            if users.indices.size == 0:
                raise ValueError(f"--users {args.users}: none of its {len(requested)} ids is a user of the dataset")
        except (ValueError, FileNotFoundError, CheckpointError) as exc:  # RunError is a ValueError
            return usage_error(exc, args.debug)
        from mikgnn.distributed.cluster import connect
        from mikgnn.distributed.errors import ClusterStartError
        from mikgnn.distributed.recommend_job import record_on_run, write_recommendations

        try:
            connect(args.address)
        except ClusterStartError as exc:
            return failure(exc, args.debug)
        summary = write_recommendations(
            str(checkpoint), args.processed, users.indices, resolve(args.output), args.k, args.keep_seen,
            args.explain, args.batch_users, args.concurrency, args.num_gpus,
            {"source": run_id or str(checkpoint), "model": trained.model_cfg.model, "processed": trained.processed,
             "unknown_users": users.unknown, "keep_seen": args.keep_seen, "explain": args.explain})
        if run_id is not None:
            record_on_run(tracking_uri, run_id, summary)
    print(f"wrote {summary['rows']:,} rows ({summary['users']:,} users x {args.k}) to {summary['output']} "
          f"in {summary['seconds']:.1f} s" + (f"; logged on run {run_id}" if run_id else ""))
    print(redact(f"source: {summary['source']}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
