"""The paper's own figures, read from ``paper_figures.csv`` (one figure a line, transcribed
from the paper's Tables 2-9), and which of its datasets a dataset of ours is compared with."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

FIGURES = Path(__file__).with_name("paper_figures.csv")
PAPER_DATASETS = ("movie", "music", "restaurant")
# Our dataset -> (the paper's column it is compared with, how the report names that pairing).
COMPARED_WITH = {
    "music": ("music", "the paper's music (Last.FM)"),
    "movie": ("movie", "the paper's movie (MovieLens-20M)"),
    "restaurant": ("restaurant", "the paper's restaurant (Dianping-Food)"),
    "movie1m": ("movie", "the paper's movie (MovieLens-20M); movie1m (MovieLens-1M, the same KG source) is a "
                         "stand-in of another size, so its figures are not the paper's movie"),
}


@cache
def figures() -> dict[tuple[int, str, str, str], float]:
    """(table, paper dataset, row label, column) -> the paper's value."""
    with FIGURES.open() as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {(int(r["table"]), r["dataset"], r["row"], r["column"]): float(r["value"]) for r in rows}


def paper_value(table: int, dataset: str, row: str, column: str) -> float | None:
    """The paper's figure for our ``dataset``'s comparison column, or None (no such figure)."""
    paper = COMPARED_WITH.get(dataset, (None,))[0]
    return figures().get((table, paper, row, column)) if paper else None
