"""The main job at movie scale on this machine: ``tune.py --dataset movie`` on synthetic data in
ML-20M's official format (138k users, 20 M ratings, 500k triples), a few trials of a few epochs.

    python benchmarks/movie_search.py                       # 2 trials x 1 epoch, sampled top-K
    python benchmarks/movie_search.py --scale 0.01 --root /tmp/movie-tiny     # a dry run

The data is written once under ``--root`` (``benchmarks/synthetic_movie.py``); the search
prepares it itself, as a user's first run does. Reported: wall time, the preparation's and
each trial's seconds (Tune's result.json), the peak PSS of the whole process tree and of each
process (the driver, Ray's daemons, each trial's worker), and the search's trials.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.memory import run_measured  # noqa: E402
from benchmarks.synthetic_movie import write_synthetic_movie  # noqa: E402
from benchmarks.tune_search import own_seconds  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("/tmp/mikgnn-synthetic"))
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--num-samples", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--eval-users", type=int, default=500)
    p.add_argument("extra", nargs="*", help="more pipelines/tune.py options, after --")
    args = p.parse_args()
    if not (args.root / "movie" / "ratings.csv").is_file():
        write_synthetic_movie(args.root, args.scale)
    work = Path(tempfile.mkdtemp(prefix="mikgnn-movie-search-"))
    cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", "movie", "--data-root", str(args.root),
           "--processed", str(work / "processed"), "--num-samples", str(args.num_samples),
           "--epochs", str(args.epochs), "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
           "--storage-path", str(work / "ray"), "--set", "protocol=sampled",
           "--set", f"eval_users={args.eval_users}", "--set", "name=movie-bench", *args.extra]
    per_process: dict[int, tuple[int, str]] = {}
    wall, peak_gib, code = run_measured(cmd, cwd=work, per_process=per_process, interval=0.5)
    if code != 0:
        raise SystemExit(f"tune.py exited {code}; its folder: {work}")
    manifest = json.loads((work / "processed" / "manifest.json").read_text())
    trials = own_seconds(work / "ray")
    params = {}
    for path in (work / "ray").rglob("params.json"):
        config = json.loads(path.read_text())
        trial = next((t for t in trials if t in path.parent.name), path.parent.name)
        params[trial] = config
    top = sorted(per_process.items(), key=lambda kv: -kv[1][0])[:8]
    print(json.dumps({
        "command": " ".join(cmd[1:]), "wall_s": round(wall, 1), "peak_pss_gib": round(peak_gib, 2),
        "train_rows": manifest["rows"]["train"] if "rows" in manifest else None,
        "n_users": manifest["n_users"], "n_items": manifest["n_items"], "n_triples": manifest["n_triples"],
        "trials": {t: {k: round(v, 1) for k, v in s.items()} | {"params": params.get(t)} for t, s in trials.items()},
        "peak_pss_mib_by_process": {f"{pid} {title}": mib for pid, (mib, title) in top}, "folder": str(work),
    }, indent=1))


if __name__ == "__main__":
    main()
