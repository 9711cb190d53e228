"""Issue 38's table: the size rule's defaults against a 16-trial search of the same model on the
same data, with the same epoch budget and early stopping.

    python benchmarks/synthetic_custom.py --output /tmp/custom-1k --users 1000 --items 1600 --positives 32000
    python benchmarks/convergence.py --dataset /tmp/custom-1k
    python benchmarks/convergence.py --dataset music --runs search      # music's size, by the size rule

A custom folder's defaults are its size rule's; for music or movie1m the rule's settings for
their manifest are passed as --set, so every row measures the rule, not Table 1. The defaults
are one pipelines/train.py run (seed 0); the search is pipelines/tune.py over
tune_spaces/default.yaml (θ, n and h, λ, lr), Optuna and ASHA, its other settings the same
defaults. One JSON line per run: the best validation AUC (the search's: the best of any trial
at any epoch), the epochs, the wall time, and the warnings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.soak_tune import this_code  # noqa: E402
from mikgnn.processed import read_manifest  # noqa: E402
from mikgnn.size_rule import DataSize, is_custom, size_defaults  # noqa: E402


def rule_flags(dataset: str, processed: Path) -> list[str]:
    """--set flags for the size rule's settings of a dataset with a Table 1 column of its own."""
    if is_custom(dataset):
        return []
    rule = size_defaults(DataSize.from_manifest(read_manifest(str(processed))))
    values = {"model": rule.table.model, "train": rule.table.train}
    flags = []
    for key in rule.keys:
        section, name = key.split(".")
        flags += ["--set", f"{name}={getattr(values[section], name)}"]
    return flags


def defaults(dataset: str, processed: Path, flags: list[str], work: Path) -> dict:
    cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", dataset, "--processed", str(processed),
           "--output", str(work / "defaults"), *flags]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=this_code(), cwd=work)
    wall = time.perf_counter() - start
    m = json.loads((work / "defaults" / "metrics.json").read_text())
    return {"run": "defaults", "command": " ".join(cmd[1:]), "wall_s": round(wall, 1),
            "best_valid_auc": round(m["valid/auc"], 4), "best_epoch": m["best_epoch"],
            "epochs_run": len(m["history"]), "epochs_budget": m["config"]["train"]["epochs"],
            "settings": {k: v for s in ("model", "train") for k, v in m["config"][s].items()
                         if m["config"]["origin"].get(f"{s}.{k}") in ("size rule", "flag")},
            "warnings": m["warnings"]}


def search(dataset: str, processed: Path, flags: list[str], work: Path, trials: int) -> dict:
    uri = f"sqlite:///{work / 'mlflow.db'}"
    cmd = [sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", dataset, "--processed", str(processed),
           "--num-samples", str(trials), "--space", str(REPO / "tune_spaces" / "default.yaml"),
           "--tracking-uri", uri, "--storage-path", str(work / "ray"), "--set", "name=convergence", *flags]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=this_code(), cwd=work)
    wall = time.perf_counter() - start
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(Path(dataset).name)
    best = None
    for run in client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial'"):
        history = client.get_metric_history(run.info.run_id, "valid/auc")
        if history:
            top = max(history, key=lambda m: m.value)
            if best is None or top.value > best[0]:
                best = (top.value, top.step, len(history), run.data.params)
    return {"run": "search", "command": " ".join(cmd[1:]), "wall_s": round(wall, 1), "trials": trials,
            "best_valid_auc": round(best[0], 4), "best_epoch": best[1], "epochs_run": best[2],
            "params": {k: best[3][k] for k in ("theta", "n", "h", "lambda", "lr") if k in best[3]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="music, movie1m or a custom folder")
    p.add_argument("--processed", type=Path, help="default: processed/<name>-seed0 (prepared once)")
    p.add_argument("--runs", default="defaults,search")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("extra", nargs="*", help="more options for both train.py and tune.py, after --")
    args = p.parse_args()
    name = Path(args.dataset).name
    processed = (args.processed or REPO / "processed" / f"{name}-seed0").resolve()
    if not (processed / "manifest.json").is_file():
        subprocess.run([sys.executable, str(REPO / "pipelines" / "prepare.py"), "--dataset", args.dataset,
                        "--output", str(processed)], check=True, stdout=subprocess.DEVNULL, env=this_code())
    flags = rule_flags(name, processed) + args.extra
    for run in args.runs.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"convergence-{name}-{run}-"))
        out = defaults(args.dataset, processed, flags, work) if run == "defaults" else \
            search(args.dataset, processed, flags, work, args.trials)
        print(json.dumps({"dataset": name, **out}), flush=True)


if __name__ == "__main__":
    main()
