"""Which trained part of Eq. 16's feature transformation costs accuracy on music?

Starts MI-KGNN from the identity transform (W1 = W2 = I, b = 0) and trains only the parts
named by --learn; the others stay fixed. --learn none is the identity transform; w1,w2,b
is the paper's learned transform from an identity start instead of Xavier's.

    python benchmarks/transform_ablation.py --learn w2 --seed 0      (needs processed/music-seed<S>)

Table 1, best epoch by validation AUC (patience 5, at most 40 epochs), full-ranking top-K.
Prints one JSON line of validation and test metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mikgnn.config import table1  # noqa: E402
from mikgnn.experiment import build, fit  # noqa: E402
from mikgnn.processed import load_processed  # noqa: E402
from mikgnn.training import make_optimizer  # noqa: E402

PARTS = ("w1", "w2", "b")


def identity_start(model: torch.nn.Module, learn: set[str]) -> None:
    """W1 = W2 = I, b = 0 in every layer; only the parts in ``learn`` keep their gradient."""
    for layer in model.layers:
        with torch.no_grad():
            layer.w1.weight.copy_(torch.eye(layer.w1.weight.shape[0]))
            layer.w2.weight.copy_(torch.eye(layer.w2.weight.shape[0]))
            layer.w1.bias.zero_()
        for part, tensor in (("w1", layer.w1.weight), ("w2", layer.w2.weight), ("b", layer.w1.bias)):
            tensor.requires_grad_(part in learn)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--learn", default="none", help=f"comma-separated parts of {PARTS} to train, or none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    learn = set() if args.learn == "none" else set(args.learn.split(","))
    if not learn <= set(PARTS):
        p.error(f"--learn: unknown parts {sorted(learn - set(PARTS))}; choose from {PARTS}")
    torch.set_num_threads(args.threads)
    t = table1("music")
    train_cfg = replace(t.train, seed=args.seed, epochs=args.epochs, patience=5)
    exp = build(load_processed(Path("processed") / f"music-seed{args.seed}"),
                replace(t.model, transform="learned"), train_cfg)
    identity_start(exp.model, learn)
    exp.optimizer = make_optimizer(exp.model, train_cfg)  # fixed parts: no gradient, no step, no decay
    result = fit(exp, train_cfg)
    print(json.dumps({"learn": sorted(learn), "seed": args.seed, "best_epoch": result["best_epoch"],
                      **{k: round(result[k], 4) for k in ("valid/auc", "valid/recall@20", "test/auc",
                                                          "test/recall@10", "test/recall@20")}}))


if __name__ == "__main__":
    main()
