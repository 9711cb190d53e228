"""The same model in RecBole 1.2.1, on our processed split: an independent figure to check ours.

    # once: RecBole in a virtual environment of its own (it pins old Ray; numpy and pandas
    # must be older than the project's)
    python3 -m venv .recbole && .recbole/bin/pip install torch==2.13.0 recbole==1.2.1 \\
        numpy==1.26.4 pandas==2.1.4 scipy==1.11.4 setuptools==69.5.1
    # then, with the project's Python:
    python benchmarks/recbole_check.py --processed processed/music-seed0 --models LightGCN,BPR \\
        --recbole-python .recbole/bin/python --out runs/recbole-music

The project's Python writes the split as RecBole atomic files (the positive rows of train /
valid / test as the three benchmark files; the KG as .kg and the item-entity .link, for its
knowledge-aware models), then runs RecBole's own model on them with RecBole's python, and
prints and writes <out>/<model>-stop<S>.json: RecBole's test Recall@K and NDCG@K (full ranking).

RecBole's protocol differs from ours in one point: at test time it also removes each user's
validation items from the candidates (ours removes the training items only), which favours
its figures slightly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DATASET = "split"
# RecBole settings per model: its defaults, with the training budget of our runs.
MODEL_SETTINGS = {
    "LightGCN": {"embedding_size": 64, "n_layers": 3, "reg_weight": 1e-4, "learning_rate": 1e-3,
                 "train_batch_size": 2048},
    "BPR": {"embedding_size": 64, "learning_rate": 1e-3, "train_batch_size": 2048},
    "CKE": {"embedding_size": 64, "kg_embedding_size": 64, "reg_weights": [1e-2, 1e-2], "learning_rate": 1e-3,
            "train_batch_size": 2048},
    "KGAT": {"embedding_size": 64, "kg_embedding_size": 64, "layers": [64], "reg_weight": 1e-5,
             "mess_dropout": 0.1, "learning_rate": 1e-3, "train_batch_size": 1024},
}


def export(processed: Path, folder: Path) -> None:
    """Our split as RecBole atomic files under folder/DATASET/."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mikgnn.processed import load_processed

    data = load_processed(processed)
    out = folder / DATASET
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in data.splits.items():
        positive = rows["label"] == 1
        lines = ["user_id:token\titem_id:token"] + [f"{u}\t{i}" for u, i in
                                                    zip(rows["user"][positive], rows["item"][positive])]
        (out / f"{DATASET}.{split}.inter").write_text("\n".join(lines) + "\n")
    kg = data.kg
    lines = ["head_id:token\trelation_id:token\ttail_id:token"] + [
        f"e{h}\tr{r}\te{t}" for h, r, t in zip(kg["head"], kg["relation"], kg["tail"])]
    (out / f"{DATASET}.kg").write_text("\n".join(lines) + "\n")
    lines = ["item_id:token\tentity_id:token"] + [f"{i}\te{i}" for i in range(data.n_items)]
    (out / f"{DATASET}.link").write_text("\n".join(lines) + "\n")


def run_recbole(folder: Path, model: str, epochs: int, seed: int, stopping_step: int) -> dict:
    """Inside RecBole's python: train ``model`` on the benchmark files, test the best epoch."""
    from recbole.quick_start import run_recbole as quick

    config = {
        "data_path": str(folder), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"], "kg": ["head_id", "relation_id", "tail_id"],
                     "link": ["item_id", "entity_id"]},
        "epochs": epochs, "stopping_step": stopping_step, "eval_step": 1, "seed": seed, "reproducibility": True,
        "use_gpu": False, "show_progress": False, "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
        "metrics": ["Recall", "NDCG"], "topk": [2, 10, 20, 50, 100], "valid_metric": "Recall@20",
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}, "checkpoint_dir": str(folder / "saved"),
        **MODEL_SETTINGS.get(model, {}),
    }
    result = quick(model=model, dataset=DATASET, config_dict=config)
    return {"model": model, "seed": seed, "epochs": epochs, "stopping_step": stopping_step,
            "settings": MODEL_SETTINGS.get(model, {}),
            "test": {k: float(v) for k, v in result["test_result"].items()},
            "valid": {k: float(v) for k, v in result["best_valid_result"].items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processed", type=Path, help="our processed dataset (export mode)")
    p.add_argument("--models", default="LightGCN,BPR")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stopping-step", type=int, default=10,
                   help="RecBole's early stopping: epochs without a better valid Recall@20 (its default 10)")
    p.add_argument("--recbole-python", default=".recbole/bin/python")
    p.add_argument("--out", type=Path, default=Path("runs/recbole"))
    p.add_argument("--inside", action="store_true", help="(internal) run one model in RecBole's python")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.inside:
        result = run_recbole(args.out.resolve(), args.models, args.epochs, args.seed, args.stopping_step)
        (args.out / f"{args.models}-stop{args.stopping_step}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result["test"]))
        return
    export(args.processed, args.out)
    for model in args.models.split(","):
        # RecBole reloads its own best checkpoint (a pickle of its config, written just before) with
        # torch.load, which newer torch refuses by default: allowed for that local, own file only.
        env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
        subprocess.run([args.recbole_python, __file__, "--inside", "--models", model, "--epochs", str(args.epochs),
                        "--seed", str(args.seed), "--stopping-step", str(args.stopping_step), "--out", str(args.out)],
                       check=True, env=env)


if __name__ == "__main__":
    main()
