"""Every model of the comparison on one dataset: train.py per (model, seed), then one table.

    MIKGNN_DATA_ROOT=../shared/data python benchmarks/baselines.py --dataset music --seeds 0,1,2
    python benchmarks/baselines.py --dataset music --models kgat,kgin --seeds 0 --jobs 1 --epochs 60

Each run is ``pipelines/train.py --dataset D --model M --seed S`` with the model's own defaults
(mikgnn.config.MODEL_DEFAULTS) and ``--set threads=T``; its metrics.json lands in
<out>/<model>-seed<S>/. The table (markdown, printed and written to <out>/table.md) has the
full-ranking test metrics, the per-batch AUC of the KGCN line, the median training seconds
per epoch, the seconds of one full test evaluation and the run's peak resident memory.
Runs already in <out> are read, not repeated.

    python benchmarks/baselines.py --dataset movie1m --models kgin,agcn --from-mlflow reproduce-movie1m

``--from-mlflow EXPERIMENT`` trains nothing: it builds the same table from the finished Table 2
cells of a reproduction (pipelines/reproduce.py runs each model with these defaults, at most 40
epochs, patience 5), read from ``--tracking-uri``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mf", "svd", "fm", "fm-transe", "per", "cke", "ripplenet", "kgcn", "kgcn-ls", "kgat", "ckan", "kgin",
          "agcn", "lightgcn", "mikgnn"]
COLUMNS = ["test/auc", "test/auc_kgcn_batch_mean", "test/f1", *(f"test/recall@{k}" for k in (2, 10, 20, 50, 100)),
           *(f"test/ndcg@{k}" for k in (2, 10, 20, 50, 100))]


def run(dataset: str, model: str, seed: int, out: Path, epochs: int, threads: int, extra: list[str]) -> dict:
    folder = out / f"{model}-seed{seed}"
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        command = [sys.executable, str(ROOT / "pipelines" / "train.py"), "--dataset", dataset, "--model", model,
                   "--seed", str(seed), "--epochs", str(epochs), "--output", str(folder), "--set",
                   f"threads={threads}", *extra]
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "log.txt", "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            _, status, usage = os.wait4(process.pid, 0)
        if status != 0 or not metrics.is_file():
            raise SystemExit(f"{model} seed {seed} failed; see {folder / 'log.txt'}")
        result = json.loads(metrics.read_text())
        result["peak_rss_mb"] = usage.ru_maxrss / 1024
        metrics.write_text(json.dumps(result, indent=2) + "\n")
    return json.loads(metrics.read_text())


def table(results: dict[str, list[dict]]) -> str:
    head = ["model", "seeds", "best epochs", "s/epoch", "eval s", "peak MB",
            *(c.replace("test/", "").replace("auc_kgcn_batch_mean", "AUC/batch") for c in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for model, runs in results.items():
        cells = [model, str(len(runs)), ",".join(str(r["best_epoch"]) for r in runs),
                 f"{np.mean([np.median(r['epoch_seconds']) for r in runs]):.2f}",
                 f"{np.mean([r['test/seconds'] for r in runs]):.2f}",
                 f"{np.mean([r.get('peak_rss_mb', float('nan')) for r in runs]):.0f}"]
        for key in COLUMNS:
            values = np.array([r[key] for r in runs])
            cells.append(f"{values.mean():.4f}" + (f" ± {values.std():.4f}" if len(runs) > 1 else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def from_mlflow(uri: str, experiment: str, models: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """The table's rows from a reproduction's finished Table 2 cells: model -> one result per seed."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} at {uri}")
    results: dict[str, list[dict]] = {}
    for model in models:
        for seed in seeds:
            wanted = (f"tags.`mikgnn.table.2` != '' and attributes.status = 'FINISHED' and "
                      f"tags.`mikgnn.seed` = '{seed}' and params.`model.model` = '{model}'")
            runs = client.search_runs([found.experiment_id], wanted, order_by=["attributes.start_time DESC"])
            if not runs:
                continue
            run = runs[0]
            m = {k.replace("_at_", "@"): v for k, v in run.data.metrics.items()}
            history = client.get_metric_history(run.info.run_id, "train/seconds")
            results.setdefault(model, []).append(
                {**m, "best_epoch": int(m["best_epoch"]), "epoch_seconds": [h.value for h in history],
                 "peak_rss_mb": m.get("worker0/peak_rss_mib", float("nan")) * 1.048576})
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--jobs", type=int, default=2, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    p.add_argument("--out", type=Path, help="default: runs/baselines-<dataset>")
    p.add_argument("--table-only", action="store_true", help="only the table of the runs already in <out>")
    p.add_argument("--from-mlflow", metavar="EXPERIMENT", help="the table from a reproduction's runs; trains nothing")
    p.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'mlflow.db'}")
    p.add_argument("extra", nargs="*", help="more train.py arguments, after --")
    args = p.parse_args()
    out = args.out or ROOT / "runs" / f"baselines-{Path(args.dataset).name}"
    models, seeds = args.models.split(","), [int(s) for s in args.seeds.split(",")]
    if args.from_mlflow:
        print(table(from_mlflow(args.tracking_uri, args.from_mlflow, models, seeds)))
        return
    jobs = [(m, s) for m in models for s in seeds]
    if args.table_only:
        jobs = [(m, s) for m, s in jobs if (out / f"{m}-seed{s}" / "metrics.json").is_file()]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: run(args.dataset, job[0], job[1], out, args.epochs, args.threads,
                                             args.extra), jobs))
    results: dict[str, list[dict]] = {}
    for (model, _), result in zip(jobs, done):
        results.setdefault(model, []).append(result)
    text = table(results)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
