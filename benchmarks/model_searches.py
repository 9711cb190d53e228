"""The same Tune budget for every model: tune.py --model M --num-samples N, then one table of
each search's best trial (chosen by validation only), from MLflow.

    MIKGNN_DATA_ROOT=../shared/data python benchmarks/model_searches.py --dataset music \\
        --models mf,svd,cke,lightgcn,kgcn,mikgnn --num-samples 8

Each search: the model's own space (tune_spaces/model-<name>.yaml, music.yaml for MI-KGNN), the
search defaults (at most 20 epochs, ASHA, validation top-K over 500 sampled users), seed 0,
the MLflow experiment search-<dataset>-<model> of the store --tracking-uri. The table gives the
best trial's validation Recall@20 (what chose it), its test metrics under the search's protocol
(top-K over 500 sampled users, AUC over every test row), its params and the search's wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="music")
    p.add_argument("--models", default="mf,svd,cke,lightgcn,kgcn,mikgnn")
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'runs' / 'model-searches.db'}")
    args = p.parse_args()
    print("| model | trials | search s | valid R@20 | test AUC | test R@20 | test N@20 | best params |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for model in args.models.split(","):
        experiment = f"search-{args.dataset}-{model}"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "pipelines/tune.py", "--dataset", args.dataset, "--model", model,
                               "--num-samples", str(args.num_samples), "--tracking-uri", args.tracking_uri,
                               "--set", f"experiment={experiment}", "--storage-path",
                               str(ROOT / "runs" / "model-searches")], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"{model}: search failed (exit {done.returncode}): {done.stderr[-500:]}", file=sys.stderr)
            continue
        client = MlflowClient(args.tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        search = client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'search'",
                                    order_by=["attributes.start_time DESC"])[0]
        m, tags = search.data.metrics, search.data.tags
        params = {k[5:]: v for k, v in tags.items() if k.startswith("best.")}
        scores = (m.get("best/valid/recall_at_20"), m.get("best/test/auc"), m.get("best/test/recall_at_20"),
                  m.get("best/test/ndcg_at_20"))
        cells = [f"{v:.4f}" if isinstance(v, float) else "–" for v in scores]
        print(f"| {model} | {args.num_samples} | {wall:.0f} | " + " | ".join(cells) + f" | {params} |", flush=True)


if __name__ == "__main__":
    main()
