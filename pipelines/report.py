"""The report of a reproduction (pipelines/reproduce.py), from MLflow alone.

Examples:
    python pipelines/report.py                                   # every reproduction in ./mlflow.db
    python pipelines/report.py --experiment reproduce-music --output docs/reproduction/music
    python pipelines/report.py --tracking-uri http://127.0.0.1:5000 --experiment reproduce-movie1m

Writes report.md, a self-contained report.html and the PNGs into --output (default
docs/reproduction/<dataset>): each of Tables 2-9 with our mean ± std over seeds beside the
paper's figure (mikgnn/reproduction/paper_figures.csv), the paper's claims checked, and plots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlflow.tracking import MlflowClient

from mikgnn.cli import add_debug_flag, usage_error
from mikgnn.datasets import DatasetError, get_dataset
from mikgnn.distributed.reproduce_job import DATASET_TAG
from mikgnn.distributed.reproduction_store import collect
from mikgnn.redact import redact
from mikgnn.reproduction.collected import DIAGNOSTICS
from mikgnn.reproduction.paper import COMPARED_WITH
from mikgnn.reproduction.report import write_report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", action="append", help="a reproduction's MLflow experiment, repeatable "
                   "(default: every experiment pipelines/reproduce.py made in the store)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///./mlflow.db)")
    p.add_argument("--output", type=Path, help="the report folder (default docs/reproduction/<dataset>; "
                   "with several experiments, <output>/<dataset>)")
    p.add_argument("--data-root", help="where the raw datasets are, to say which of the paper's are absent")
    add_debug_flag(p)
    return p


def _reproductions(client: MlflowClient) -> dict[str, str]:
    """Experiment name -> dataset, for every experiment a reproduction made."""
    return {e.name: e.tags[DATASET_TAG] for e in client.search_experiments()
            if DATASET_TAG in e.tags and e.name.startswith("reproduce-")}


def _others(done: dict[str, str], data_root: str | None) -> dict[str, str]:
    """What each dataset compared with the paper's is, for the reports' dataset table."""
    out = {}
    reported = set(done.values())
    for dataset in COMPARED_WITH:
        command = f"`python pipelines/reproduce.py --dataset {dataset}`, then `python pipelines/report.py`"
        if dataset in reported:
            out[dataset] = f"reported in [{dataset}/report.md](../{dataset}/report.md)"
            continue
        try:
            get_dataset(dataset, data_root).check_present()
            out[dataset] = f"not run yet: {command}"
        except DatasetError:
            out[dataset] = f"not run: data absent (put it under the data root, then {command})"
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mikgnn.distributed.tracking import default_tracking_uri, existing_store

    uri = args.tracking_uri or default_tracking_uri()
    try:
        client = MlflowClient(existing_store(uri))
        found = _reproductions(client)
        names = args.experiment or sorted(found)
        if not names:
            raise ValueError(f"no reproduction in {redact(uri)}: run pipelines/reproduce.py first")
        collected = [collect(uri, name) for name in names]
    except ValueError as exc:
        return usage_error(exc, args.debug)
    others = _others(found, args.data_root)
    tracking = "" if args.tracking_uri is None else f" at {redact(uri)}"
    for data in collected:
        if args.output is None:
            folder = Path("docs/reproduction") / data.dataset
        else:
            folder = args.output / data.dataset if len(collected) > 1 else args.output
        path = write_report(data, folder, others, tracking)
        filled = sum(len(v) for (_, _, column), v in data.values.items() if column not in DIAGNOSTICS)
        print(f"{data.experiment}: {path} ({filled} figures from MLflow, seeds {sorted(data.seeds)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
