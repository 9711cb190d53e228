"""Issue 34's device check: the Ray path on a GPU, trials sharing it, many CPU workers, a
movie-scale run and recommendations on the GPU, each a JSON line in ``OUT/figures.jsonl`` with
its command, and every command's log under ``OUT/logs``.

    python benchmarks/gpu_check.py OUT                 # a machine with one GPU and 16 cores (~9 min)
    python benchmarks/gpu_check.py OUT --cpu           # the dry run: tiny sizes, no GPU (~2 min)

``benchmarks/gpu_check.sh`` is the wrapper the device runs (the offline site of Ray, MLflow and
Optuna unpacked first). The stages:
  a  Ray Train on one GPU against one process on the GPU and one on the CPU (s/epoch)
  b  Tune trials sharing the GPU (--gpus-per-worker 0.25): wall time, trials at once
  c  data-parallel on CPU workers (1, 2, 4, 8): rows/s and test AUC against 1 worker
  d  movie scale (synthetic, ML-20M's format): preparation, 2 epochs through Ray Train on the
     GPU at Table 1's movie settings, one full-ranking evaluation of every test user
  e  recommend.py on the GPU: every user, k = 100 (20 in the dry run)
A stage that fails or runs past its bound writes its error line and the next one runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.synthetic_movie import write_synthetic_movie  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """What each stage runs at: the device's sizes, or the dry run's."""

    gpu: bool
    dataset: str  # stages a, c, e
    data_root: Path
    epochs: int  # stage a
    worker_epochs: int  # stage c
    samples: int  # stage b
    sample_epochs: int
    workers: tuple[int, ...]
    movie_scale: float  # stage d
    k: int  # stage e
    bound_s: dict  # per stage


# bounds: 9 minutes in all, d the longest (20 M rows); a stage past its bound records that and the next runs
DEVICE = dict(epochs=3, worker_epochs=2, samples=8, sample_epochs=10, workers=(1, 2, 4, 8), movie_scale=1.0, k=100,
              bound_s=dict(a=75, b=120, c=100, e=40, d=200))
# the generator keeps ML-20M's ~145 ratings a user: at 0.01, 1,381 users rate 169 items
DRY = dict(epochs=1, worker_epochs=1, samples=2, sample_epochs=1, workers=(1, 2), movie_scale=0.01, k=20,
           bound_s=dict(a=300, b=300, c=300, e=300, d=300))


class Check:
    def __init__(self, out: Path, sizes: Sizes, address: str):
        self.out, self.sizes, self.address = out, sizes, address
        (out / "logs").mkdir(parents=True, exist_ok=True)
        self.figures = out / "figures.jsonl"
        self.deadline = 0.0

    def figure(self, stage: str, **values) -> None:
        line = json.dumps({"stage": stage, "gpu": self.sizes.gpu} | values)
        print(line, flush=True)
        with open(self.figures, "a") as f:
            f.write(line + "\n")

    def run(self, log: str, *args: str) -> tuple[float, Path]:
        """A pipeline command within the stage's bound; its wall seconds and log. Raises on failure."""
        left = self.deadline - time.monotonic()
        if left < 5:
            raise TimeoutError(f"{log}: the stage's bound was spent before it started")
        path = self.out / "logs" / f"{log}.log"
        cmd = [sys.executable, *args]
        start = time.perf_counter()
        with open(path, "w") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=left, cwd=REPO).returncode
        if code != 0:
            tail = path.read_text().strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{log} exited {code}: {tail[0][:300]} ({path})")
        return time.perf_counter() - start, path

    def train(self, log: str, dataset: str, processed: Path, *flags: str) -> dict:
        """train.py; its metrics.json with the wall seconds."""
        output = self.out / "runs" / log
        wall, _ = self.run(log, "pipelines/train.py", "--dataset", dataset, "--data-root", str(self.sizes.data_root),
                           "--processed", str(processed), "--output", str(output), "--set", "patience=100", *flags)
        return json.loads((output / "metrics.json").read_text()) | {"wall_s": wall}


def epoch_figures(metrics: dict) -> dict:
    seconds = metrics["epoch_seconds"]
    rows = metrics["manifest"]["rows"]["train"]
    steady = seconds[1:] or seconds  # the first epoch holds CUDA's start-up
    return {"epoch_s": [round(s, 3) for s in seconds], "steady_epoch_s": round(statistics.median(steady), 3),
            "rows_per_s": round(rows / statistics.median(steady)), "test_auc": round(metrics["test/auc"], 4),
            "wall_s": round(metrics["wall_s"], 1)}


def stage_a(check: Check, processed: Path) -> None:
    s = check.sizes
    common = ("--epochs", str(s.epochs), "--set", "protocol=sampled", "--set", "eval_users=500")
    ray_flags = ("--workers", "1", "--storage-path", str(check.out / "ray"), "--address", check.address)
    if s.gpu:
        runs = {"ray_train_gpu": (*ray_flags, "--gpus-per-worker", "1"), "one_process_gpu": ("--set", "device=cuda"),
                "one_process_cpu": ("--set", "device=cpu")}
    else:  # Ray Train on the CPU is stage c's first run, with these flags
        runs = {"one_process_cpu": ("--set", "device=cpu")}
    for name, flags in runs.items():
        check.figure("a", run=name, dataset=s.dataset, **epoch_figures(check.train(f"a-{name}", s.dataset,
                                                                                   processed, *common, *flags)))


def stage_b(check: Check) -> None:
    s = check.sizes
    storage = check.out / "ray-b"
    gpu = ("--gpus-per-worker", "0.25") if s.gpu else ()
    wall, _ = check.run("b-tune", "pipelines/tune.py", "--dataset", s.dataset, "--data-root", str(s.data_root),
                        "--processed", str(check.out / "processed" / s.dataset), "--num-samples", str(s.samples),
                        "--epochs", str(s.sample_epochs), "--tracking-uri", f"sqlite:///{check.out / 'mlflow-b.db'}",
                        "--storage-path", str(storage), "--set", "name=gpu-check", "--address", check.address, *gpu)
    spans, real = [], 0
    for path in storage.rglob("result.json"):
        results = [json.loads(line) for line in path.read_text().splitlines()]
        if not results:
            continue
        first, last = results[0], results[-1]
        spans.append((first["timestamp"] - first["time_this_iter_s"], last["timestamp"]))
        real += any(r.get("final") and math.isfinite(r.get("test/auc", math.nan)) for r in results)
    at_once = max(sum(a <= t < b for a, b in spans) for t, _ in spans) if spans else 0
    check.figure("b", dataset=s.dataset, wall_s=round(wall, 1), trials=len(spans), trials_with_test=real,
                 trials_at_once=at_once, gpus_per_worker=0.25 if s.gpu else 0)


def stage_c(check: Check, processed: Path) -> None:
    s = check.sizes
    one = None
    for workers in s.workers:
        metrics = check.train(f"c-workers{workers}", s.dataset, processed, "--epochs", str(s.worker_epochs),
                              "--workers", str(workers), "--storage-path", str(check.out / "ray"), "--address",
                              check.address, "--set", "protocol=sampled", "--set", "eval_users=500")
        figures = epoch_figures(metrics)
        one = one or figures
        speedup = round(figures["rows_per_s"] / one["rows_per_s"], 2)
        gap = round(figures["test_auc"] - one["test_auc"], 4)
        check.figure("c", dataset=s.dataset, workers=workers, speedup=speedup, test_auc_minus_1_worker=gap, **figures)


def stage_d(check: Check) -> Path:
    s = check.sizes
    root = check.out / "movie-data"
    start = time.perf_counter()
    write_synthetic_movie(root, s.movie_scale)
    written = time.perf_counter() - start
    processed = check.out / "processed" / "movie"
    prepare_s, _ = check.run("d-prepare", "pipelines/prepare.py", "--dataset", "movie", "--data-root", str(root),
                             "--output", str(processed), "--address", check.address)
    gpu = ("--gpus-per-worker", "1") if s.gpu else ()
    output = check.out / "runs" / "d-movie"
    wall, _ = check.run("d-train", "pipelines/train.py", "--dataset", "movie", "--data-root", str(root),
                        "--processed", str(processed), "--output", str(output), "--epochs", "2", "--workers", "1",
                        "--storage-path", str(check.out / "ray"), "--address", check.address, "--set", "patience=100",
                        "--set", "protocol=full",
                        "--set", "topk_every=0", *gpu)
    metrics = json.loads((output / "metrics.json").read_text())
    check.figure("d", scale=s.movie_scale, write_s=round(written, 1), prepare_s=round(prepare_s, 1),
                 train_rows=metrics["manifest"]["rows"]["train"], users=metrics["manifest"]["n_users"],
                 epoch_s=[round(x, 1) for x in metrics["epoch_seconds"]], paper_table7_epoch_s=498,
                 full_ranking_test_s=round(metrics["test/seconds"], 1), test_auc=round(metrics["test/auc"], 4),
                 test_recall_at_20=round(metrics["test/recall@20"], 4), wall_s=round(wall, 1))
    return output


def stage_e(check: Check) -> None:
    s = check.sizes
    checkpoint = check.out / "runs" / "a-one_process_cpu" / "checkpoint"
    gpu = ("--num-gpus", "1") if s.gpu else ()
    output = check.out / "recs"
    wall, _ = check.run("e-recommend", "pipelines/recommend.py", "--checkpoint", str(checkpoint), "--k", str(s.k),
                        "--output", str(output), "--processed", str(check.out / "processed" / s.dataset),
                        "--address", check.address, *gpu)
    import pyarrow.parquet as pq

    rows = pq.read_table(output).num_rows
    check.figure("e", dataset=s.dataset, wall_s=round(wall, 1), rows=rows, users=rows // s.k, k=s.k,
                 num_gpus=1 if s.gpu else 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--cpu", action="store_true", help="the dry run: no GPU, tiny sizes")
    p.add_argument("--stages", default="abced", help="which stages, in this order (d, the longest, last)")
    args = p.parse_args()
    out = args.out.resolve()
    if args.cpu:
        root = out / "dry-data"
        write_synthetic_movie(root, DRY["movie_scale"], seed=1)
        sizes = Sizes(gpu=False, dataset="movie", data_root=root, **DRY)
    else:
        root = Path(os.environ.get("MIKGNN_DATA_ROOT", REPO / "data"))
        sizes = Sizes(gpu=True, dataset="movie1m", data_root=root, **DEVICE)
    # one local Ray for every command (as a cluster's jobs share theirs): each joins it by address
    import ray

    from mikgnn.distributed.cluster import connect

    connect()
    check = Check(out, sizes, ray.get_runtime_context().gcs_address)
    processed = out / "processed" / sizes.dataset
    stages = {"a": lambda: stage_a(check, processed), "b": lambda: stage_b(check),
              "c": lambda: stage_c(check, processed), "d": lambda: stage_d(check), "e": lambda: stage_e(check)}
    failed = 0
    for name in args.stages:
        check.deadline = time.monotonic() + sizes.bound_s[name]
        start = time.perf_counter()
        try:
            stages[name]()
        except Exception as exc:  # the next stage still runs; the figure says why this one has none
            failed += 1
            check.figure(name, error=f"{type(exc).__name__}: {exc}"[:600])
        print(f"stage {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    ray.shutdown()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
