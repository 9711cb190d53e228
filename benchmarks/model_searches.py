"""The same Tune budget for every model: tune.py --model M --num-samples N, then one table of
each search's best trial (chosen by validation only), from MLflow.

    MIKGNN_DATA_ROOT=../shared/data python benchmarks/model_searches.py --dataset music \\
        --models mf,svd,cke,lightgcn,kgcn,mikgnn --num-samples 8

Each search: the model's own space (tune_spaces/model-<name>.yaml, music.yaml for MI-KGNN), the
search defaults (at most 20 epochs, ASHA, validation top-K over 500 sampled users), seed 0,
the MLflow experiment search-<dataset>-<model> of the store --tracking-uri. The table gives the
best trial's validation Recall@20 (what chose it), its test metrics under the search's protocol
(top-K over 500 sampled users, AUC over every test row), its params and the search's wall time.

    python benchmarks/model_searches.py --dataset music --models mf,cke --reuse --refit-seeds 0,1,2

``--refit-seeds`` then trains each search's best point again, at every seed given, under the
protocol of benchmarks/baselines.py (train.py, at most 40 epochs, patience 5, full ranking of
every test user), so that the searched table compares with the defaults' one; its runs land in
runs/searched-<dataset>/ and are read, not repeated. ``--reuse`` takes each model's latest
finished search in the store instead of running a new one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.baselines import run, table  # noqa: E402
from mikgnn.search_space import parse_field  # noqa: E402

SETTING = {"theta": "theta", "n": "n_neighbours", "h": "hops", "lambda": "l2", "lr": "lr"}


def overrides(params: dict[str, str]) -> list[str]:
    """A search's best point as train.py flags (a field "8x1" is n = 8, h = 1)."""
    if "field" in params:
        n, h = parse_field(params.pop("field"))
        params = {**params, "n": str(n), "h": str(h)}
    return [flag for name, value in sorted(params.items()) for flag in ("--set", f"{SETTING[name]}={value}")]


def search(dataset: str, model: str, samples: int, uri: str, reuse: bool) -> dict[str, str] | None:
    """Runs (or with ``reuse`` finds) the model's search; prints its row; returns its best params."""
    experiment = f"search-{dataset}-{model}"
    client = MlflowClient(uri)
    wall = float("nan")
    if not (reuse and client.get_experiment_by_name(experiment)):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "pipelines/tune.py", "--dataset", dataset, "--model", model,
                               "--num-samples", str(samples), "--tracking-uri", uri,
                               "--set", f"experiment={experiment}", "--storage-path",
                               str(ROOT / "runs" / "model-searches")], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"{model}: search failed (exit {done.returncode}): {done.stderr[-500:]}", file=sys.stderr)
            return None
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'search' and "
                               "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"])
    if not found:
        print(f"{model}: no finished search in {experiment}", file=sys.stderr)
        return None
    m, tags = found[0].data.metrics, found[0].data.tags
    params = {k[5:]: v for k, v in tags.items() if k.startswith("best.")}
    # trial runs are top-level, tagged with their search's name (mikgnn.distributed.tracking)
    trials = len(client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial' and "
                                    f"tags.`mikgnn.search` = '{tags['mikgnn.search']}'"))
    scores = (m.get("best/valid/recall_at_20"), m.get("best/test/auc"), m.get("best/test/recall_at_20"),
              m.get("best/test/ndcg_at_20"))
    cells = [f"{v:.4f}" if isinstance(v, float) else "–" for v in scores]
    print(f"| {model} | {trials} | {wall:.0f} | " + " | ".join(cells) + f" | {params} |", flush=True)
    return params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--models", default="mf,svd,cke,lightgcn,kgcn,mikgnn")
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'runs' / 'model-searches.db'}")
    p.add_argument("--reuse", action="store_true", help="take each model's latest finished search")
    p.add_argument("--refit-seeds", help="train each best point again at these seeds, e.g. 0,1,2")
    p.add_argument("--jobs", type=int, default=2, help="refit runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each refit run")
    args = p.parse_args()
    print("| model | trials | search s | valid R@20 | test AUC | test R@20 | test N@20 | best params |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    best = {m: search(args.dataset, m, args.num_samples, args.tracking_uri, args.reuse)
            for m in args.models.split(",")}
    if not args.refit_seeds:
        return
    out = ROOT / "runs" / f"searched-{Path(args.dataset).name}"
    jobs = [(m, int(s)) for m, params in best.items() if params is not None for s in args.refit_seeds.split(",")]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: run(args.dataset, job[0], job[1], out, 40, args.threads,
                                             ["--set", "patience=5", *overrides(dict(best[job[0]]))]), jobs))
    results: dict[str, list[dict]] = {}
    for (model, _), result in zip(jobs, done):
        results.setdefault(model, []).append(result)
    text = table(results)
    (out / "table.md").write_text(text + "\n")
    print(f"\nthe best points again, seeds {args.refit_seeds}, full ranking (runs in {out}):\n{text}")


if __name__ == "__main__":
    main()
