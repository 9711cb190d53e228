"""Seconds of one training step of a model at its own defaults: wall and CPU time, per step and
scaled to an epoch, and the process's peak memory.

    python benchmarks/step_time.py --dataset movie1m --models kgat,ckan,ripplenet,agcn --steps 6
    python benchmarks/step_time.py --dataset music --models mf,mikgnn --threads 2
    python benchmarks/step_time.py --dataset movie1m --models mikgnn --hops 3 --steps 3   # Table 9's h = 3

The settings are those `train.py --dataset D --model M` resolves (Table 1 < the model's own
defaults). Needs processed/<dataset>-seed0 (``pipelines/prepare.py``). The first step (allocations, KGAT's
attention of the epoch) is timed apart; the others give the median. CPU seconds are the
process's user + system time: on a machine shared with other jobs they move less than the
wall-clock ones. Each model runs in its own process, so the peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mikgnn.experiment import build  # noqa: E402
from mikgnn.processed import load_processed  # noqa: E402
from mikgnn.settings import resolve_settings  # noqa: E402
from mikgnn.training import shuffled_batches, step_loss, training_rows  # noqa: E402


def measure(dataset: str, processed: Path, model: str, steps: int, threads: int, hops: int | None) -> dict:
    torch.set_num_threads(threads)
    settings = resolve_settings(dataset, model, flags={"model": {"hops": hops}})
    train_cfg = settings.train
    exp = build(load_processed(processed), settings.model, train_cfg)
    rows = training_rows(exp.splits["train"], train_cfg)
    batches = shuffled_batches(rows, train_cfg.batch_size, torch.Generator().manual_seed(0))
    wall, cpu = [], []
    for _ in range(steps):
        batch = next(batches)
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        loss = step_loss(exp.model, batch, train_cfg, exp.ls_table, exp.negatives)
        exp.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        exp.optimizer.step()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    per_epoch = len(rows) // train_cfg.batch_size
    return {"model": model, "steps_per_epoch": per_epoch, "first_step_s": wall[0],
            "step_s": statistics.median(wall[1:]), "step_cpu_s": statistics.median(cpu[1:]),
            "epoch_min": statistics.median(wall[1:]) * per_epoch / 60,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--processed", type=Path, help="default: processed/<dataset>-seed0")
    p.add_argument("--models", default="kgat,ckan,ripplenet,agcn")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hops", type=int, help="h, for the models that take it (default: the dataset's Table 1)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # the child process of one model
    args = p.parse_args()
    processed = args.processed or ROOT / "processed" / f"{args.dataset}-seed0"
    if args.one:
        print(json.dumps(measure(args.dataset, processed, args.one, args.steps, args.threads, args.hops)))
        return
    print("| model | steps/epoch | first step s | step s (median) | step CPU s | epoch min | peak MB |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        out = subprocess.run([sys.executable, __file__, "--dataset", args.dataset, "--processed", str(processed),
                              "--one", model,
                              "--steps", str(args.steps), "--threads", str(args.threads),
                              *(["--hops", str(args.hops)] if args.hops else [])],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {model} | {r['steps_per_epoch']} | {r['first_step_s']:.2f} | {r['step_s']:.3f} | "
              f"{r['step_cpu_s']:.3f} | {r['epoch_min']:.2f} | {r['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
