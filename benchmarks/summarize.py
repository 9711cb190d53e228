"""Mean ± std over seeds of the test metrics in <folder>/<model>-seed<S>/metrics.json.

    python benchmarks/summarize.py runs/repro-music
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

KEYS = ["valid/auc", "valid/recall@20", "test/auc", "test/f1", "test/recall@2", "test/recall@10", "test/recall@20",
        "test/recall@50", "test/recall@100", "test/ndcg@10", "test/ndcg@20"]


def main(folder: str) -> None:
    runs = defaultdict(list)
    for path in sorted(Path(folder).glob("*-seed*/metrics.json")):
        runs[path.parent.name.rsplit("-seed", 1)[0]].append(json.loads(path.read_text()))
    print("| model | seeds | best epochs | s/epoch | " + " | ".join(k.replace("test/", "") for k in KEYS) + " |")
    print("|---" * (len(KEYS) + 4) + "|")
    for model, results in runs.items():
        cells = []
        for key in KEYS:
            values = np.array([r[key] for r in results])
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        epochs = ",".join(str(r["best_epoch"]) for r in results)
        seconds = np.mean([np.median(r["epoch_seconds"]) for r in results])
        print(f"| {model} | {len(results)} | {epochs} | {seconds:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
