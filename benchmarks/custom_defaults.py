"""Issue 16's check: a custom dataset of the issue's size, with a planted signal, trained with the
defaults (its size rule), against music's Table 1 column (--preset music, the old default).

    python benchmarks/custom_defaults.py --folder /tmp/custom-18k            # writes it when absent
    python benchmarks/custom_defaults.py --folder /tmp/custom-18k --runs rule -- --set dim=32

Runs pipelines/train.py (one process, seed 0) once per setting and prints one JSON line each:
the settings that differ, each epoch's validation AUC and seconds, the best epoch's validation
and test AUC, and whether the "not learning" warning fired.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.synthetic_custom import write  # noqa: E402

RUNS = {"rule": [], "music": ["--preset", "music"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, required=True, help="the custom dataset (written when absent)")
    p.add_argument("--runs", default="rule,music", help="which settings: rule (the defaults), music (--preset)")
    p.add_argument("extra", nargs="*", help="more train.py options, after --")
    args = p.parse_args()
    if not (args.folder / "ratings.csv").is_file():
        print(json.dumps({"wrote": str(args.folder), **write(args.folder)}), flush=True)
    for name in args.runs.split(","):
        out = Path(tempfile.mkdtemp(prefix=f"custom-{name}-"))
        cmd = [sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", str(args.folder), "--output",
               str(out), *RUNS[name], *args.extra]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            print(json.dumps({"run": name, "error": done.stderr[-2000:]}), flush=True)
            continue
        m = json.loads((out / "metrics.json").read_text())
        print(json.dumps({
            "run": name, "command": " ".join(cmd[1:]),
            "settings": {k: v for s in ("model", "train") for k, v in m["config"][s].items()
                         if m["config"]["origin"].get(f"{s}.{k}", "default") not in ("default", "model")},
            "valid_auc": [round(h["valid/auc"], 4) for h in m["history"]],
            "epoch_s": [round(s, 1) for s in m["epoch_seconds"]], "best_epoch": m["best_epoch"],
            "best_valid_auc": round(m["valid/auc"], 4), "test_auc": round(m["test/auc"], 4),
            "test_recall@20": round(m["test/recall@20"], 4), "warnings": m["warnings"]}), flush=True)


if __name__ == "__main__":
    main()
