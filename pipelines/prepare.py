"""Turn a dataset's raw files into the processed dataset (SPEC §2), as a Ray Data job.

Examples:
    python pipelines/prepare.py --dataset music
    python pipelines/prepare.py --dataset movie --data-root /data --download
    python pipelines/prepare.py --dataset ./my_folder --output processed/mine --seed 1

The output folder (default: processed/<dataset>-seed<seed>) holds train/, valid/, test/
and kg/ as sharded Parquet plus manifest.json. Running the same command again on the same
raw files reuses it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mikgnn.cli import add_debug_flag, add_download_flag, usage_error
from mikgnn.datasets import DatasetError, get_dataset
from mikgnn.distributed.prepare import prepare
from mikgnn.processed import read_manifest
from mikgnn.settings import check_flags
from mikgnn.storage import check_writable


def default_output(dataset: str, seed: int) -> Path:
    return Path("processed") / f"{Path(dataset).name}-seed{seed}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True,
                   help="movie, music, restaurant, movie1m, or the path of a custom dataset folder")
    p.add_argument("--data-root", help="folder holding <dataset>/ raw files "
                   "(default: $MIKGNN_DATA_ROOT, else ./data)")
    p.add_argument("--output", type=Path, help="processed folder (default: processed/<dataset>-seed<seed>)")
    p.add_argument("--seed", type=int, default=0, help="seed of negatives and split (default 0)")
    add_download_flag(p)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    add_debug_flag(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_flags(args)
        spec = get_dataset(args.dataset, args.data_root)
        spec.ensure_present(args.download)
        output = args.output or default_output(args.dataset, args.seed)
        if read_manifest(output) is None:  # to be built: its folder must take it
            check_writable(output, "--output")
        manifest = prepare(spec, output, args.seed, address=args.address)
    except (DatasetError, ValueError) as exc:
        return usage_error(exc, args.debug)
    print(json.dumps({k: v for k, v in manifest.items() if k != "raw_sha256"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
