"""The paper's Tables 2-9 as grids of cells: what each table trains, and which of our models
stands for each of the paper's rows.

A *system* is one row of a table: one of our models, and for MI-KGNN one of its variants
(``config.VARIANTS``). A table is its systems × its columns (metrics, or the n or h it sweeps).
The cells themselves (a system at a seed and a setting) are built by ``cells.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

KS = (2, 10, 20, 50, 100)
RECALL = tuple(f"recall@{k}" for k in KS)
NDCG = tuple(f"ndcg@{k}" for k in KS)
N_VALUES = (2, 4, 8, 16, 32)  # Table 8
H_VALUES = (1, 2, 3, 4)  # Tables 7 and 9


@dataclass(frozen=True)
class System:
    """A row: the paper's label, and the model (and MI-KGNN variant) that reproduces it."""

    label: str
    model: str
    variant: str = "mi-kgnn"
    in_paper: bool = True  # False: a row of ours the paper does not have (LightGCN, MF)


# Table 2-4's systems, in the paper's order, then ours. The paper's "KGCN-avg" is KGCN with its
# default (sum) aggregator, as KGCN's code names it; LibFM on id features is our fm.
BASELINE_SYSTEMS = (
    System("MI-KGNN", "mikgnn"), System("KGIN", "kgin"), System("AGCN", "agcn"), System("CKAN", "ckan"),
    System("KGAT", "kgat"), System("KGCN-LS", "kgcn-ls"), System("KGCN-avg", "kgcn"),
    System("RippleNet", "ripplenet"), System("CKE", "cke"), System("PER", "per"),
    System("LibFM+TransE", "fm-transe"), System("LibFM", "fm"), System("SVD", "svd"),
    System("LightGCN", "lightgcn", in_paper=False), System("MF", "mf", in_paper=False),
)
ABLATION_SYSTEMS = (
    System("MI-KGNN", "mikgnn"), System("w/o neig. att.", "mikgnn", "w/o-neig-att"),
    System("w/o user att.", "mikgnn", "w/o-user-att"), System("w/o att.", "mikgnn", "w/o-att"),
)
FMK_SYSTEMS = (
    System("FMK", "mikgnn", "fmk"), System("w-r-FMK", "mikgnn", "w-r"), System("w-a-FMK", "mikgnn", "w-a"),
    System("w-l-FMK", "mikgnn", "w-l"), System("w/o-r-FMK", "mikgnn", "w/o-r"),
    System("w/o-a-FMK", "mikgnn", "w/o-a"), System("w/o-l-FMK", "mikgnn", "w/o-l"), System("MI-KGNN", "mikgnn"),
)
MIKGNN = (System("MI-KGNN", "mikgnn"),)


@dataclass(frozen=True)
class Table:
    """One of the paper's tables. ``kind``: "accuracy" cells train to early stopping and are
    tested; "timing" cells train a few epochs alone on the machine and are timed. ``axis``: the
    hyperparameter its columns sweep (n or h), with ``values``; else its columns are metrics."""

    number: int
    title: str
    kind: str
    systems: tuple[System, ...]
    metrics: tuple[str, ...]
    axis: str | None = None
    values: tuple[int, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The paper's column names (paper_figures.csv): a metric, or metric@<axis><value>."""
        if self.axis is None:
            return self.metrics
        return tuple(f"{self.metrics[0]}@{self.axis}{v}" for v in self.values)


TABLES = {t.number: t for t in (
    Table(2, "Recall@K in top-K recommendation", "accuracy", BASELINE_SYSTEMS, RECALL),
    Table(3, "NDCG@K in top-K recommendation", "accuracy", BASELINE_SYSTEMS, NDCG),
    Table(4, "AUC in CTR prediction", "accuracy", BASELINE_SYSTEMS, ("auc",)),
    Table(5, "Attention ablations (Recall@K)", "accuracy", ABLATION_SYSTEMS, RECALL),
    Table(6, "Fast-MI-KGNN variants (Recall@K)", "accuracy", FMK_SYSTEMS, RECALL),
    Table(7, "Seconds per training epoch against h", "timing", FMK_SYSTEMS, ("seconds",), "h", H_VALUES),
    Table(8, "Recall@10 of MI-KGNN against n", "accuracy", MIKGNN, ("recall@10",), "n", N_VALUES),
    Table(9, "Recall@10 of MI-KGNN against h", "accuracy", MIKGNN, ("recall@10",), "h", H_VALUES),
)}


def parse_tables(text: str) -> tuple[int, ...]:
    """``--tables 2,3,9`` as table numbers, or a ValueError naming the bad one."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if not part.isdigit() or int(part) not in TABLES:
            raise ValueError(f"--tables: unknown table {part!r}: the paper's tables are {sorted(TABLES)}")
        out.append(int(part))
    if not out:
        raise ValueError("--tables: name at least one table, e.g. --tables 2,3,4")
    return tuple(sorted(set(out)))
