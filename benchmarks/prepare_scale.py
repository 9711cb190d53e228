"""Time and memory of preparing a movie-scale (ML-20M format) synthetic dataset.

    python benchmarks/prepare_scale.py                 # paper scale, data in /tmp/mikgnn-synthetic
    python benchmarks/prepare_scale.py --scale 0.1

Target (issue 2) on the 2-core machine: <= 60 s and <= 8 GiB peak memory. Ray starts inside
the timed command (a cold start, as a user runs it); the output folder is fresh every run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import run_measured  # noqa: E402
from benchmarks.synthetic_movie import write_synthetic_movie  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("/tmp/mikgnn-synthetic"))
    p.add_argument("--scale", type=float, default=1.0)
    args = p.parse_args()
    root = args.root if args.scale == 1.0 else args.root.with_name(f"{args.root.name}-{args.scale}")
    if not (root / "movie" / "ratings.csv").is_file():
        write_synthetic_movie(root, args.scale)
    out = root / "processed-bench"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(REPO / "pipelines" / "prepare.py"), "--dataset", "movie",
           "--data-root", str(root), "--output", str(out)]
    wall, peak_gib, code = run_measured(cmd)
    if code != 0:
        raise SystemExit(f"prepare failed with exit code {code}")
    manifest = json.loads((out / "manifest.json").read_text())
    print(json.dumps({"wall_s": round(wall, 1), "peak_pss_gib": round(peak_gib, 2),
                      "rated_rows_in": manifest["n_positives"], "labelled_rows": manifest["n_interactions"],
                      "n_users": manifest["n_users"], "n_entities": manifest["n_entities"],
                      "n_triples": manifest["n_triples"]}, indent=2))


if __name__ == "__main__":
    main()
