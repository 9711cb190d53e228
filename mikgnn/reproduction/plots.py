"""The report's figures as PNG: Recall@K per model (Table 2), Recall@10 against n (Table 8) and
h (Table 9), and seconds per epoch against h on a log scale (Table 7); ours solid, the
paper's dashed."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mikgnn.reproduction.tables import H_VALUES, KS, N_VALUES, TABLES  # noqa: E402

Seeds = Callable[[int, str, str], list[float]]  # (table, row, column) -> our value per seed
Paper = Callable[[int, str, str], float | None]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def recall_curves(ours: Seeds, paper: Paper, folder: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for system in TABLES[2].systems:
        points = [(k, ours(2, system.label, f"recall@{k}")) for k in KS]
        points = [(k, statistics.fmean(v)) for k, v in points if v]
        if len(points) == len(KS):
            ax.plot(*zip(*points), marker="o", label=system.label, lw=2.5 if system.label == "MI-KGNN" else 1.2)
            drawn = True
    theirs = [(k, paper(2, "MI-KGNN", f"recall@{k}")) for k in KS]
    if drawn and all(v is not None for _, v in theirs):
        ax.plot(*zip(*theirs), "k--", marker="x", label="MI-KGNN (paper)")
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_xticks(KS, [str(k) for k in KS])
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K (test, mean over seeds)")
    ax.set_title("Table 2: Recall@K per model")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, folder / "recall_at_k.png")


def sweep(ours: Seeds, paper: Paper, folder: Path, table: int) -> Path | None:
    axis, values = ("n", N_VALUES) if table == 8 else ("h", H_VALUES)
    columns = [f"recall@10@{axis}{v}" for v in values]
    points = [(v, _mean_std(ours(table, "MI-KGNN", c))) for v, c in zip(values, columns) if ours(table, "MI-KGNN", c)]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar([p[0] for p in points], [p[1][0] for p in points], yerr=[p[1][1] for p in points], marker="o",
                capsize=3, label="ours (mean ± std)")
    theirs = [(v, paper(table, "MI-KGNN", c)) for v, c in zip(values, columns)]
    theirs = [(v, y) for v, y in theirs if y is not None]
    if theirs:
        ax.plot(*zip(*theirs), "k--", marker="x", label="paper")
    if axis == "n":
        ax.set_xscale("log", base=2)
    ax.set_xticks(values, [str(v) for v in values])
    ax.set_xlabel(axis)
    ax.set_ylabel("Recall@10")
    ax.set_title(f"Table {table}: Recall@10 of MI-KGNN against {axis}")
    ax.legend()
    return _save(fig, folder / f"recall10_vs_{axis}.png")


def seconds(ours: Seeds, paper: Paper, folder: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for system in TABLES[7].systems:
        points = [(h, ours(7, system.label, f"seconds@h{h}")) for h in H_VALUES]
        points = [(h, statistics.fmean(v)) for h, v in points if v]
        if points:
            ax.plot(*zip(*points), marker="o", label=system.label)
            drawn = True
        if system.label in ("MI-KGNN", "FMK"):
            theirs = [(h, paper(7, system.label, f"seconds@h{h}")) for h in H_VALUES]
            theirs = [(h, y) for h, y in theirs if y is not None]
            if theirs:
                ax.plot(*zip(*theirs), "--", marker="x", label=f"{system.label} (paper, GTX 1080 Ti)")
    if not drawn:
        plt.close(fig)
        return None
    ax.set_yscale("log")
    ax.set_xticks(H_VALUES, [str(h) for h in H_VALUES])
    ax.set_xlabel("h")
    ax.set_ylabel("seconds per training epoch")
    ax.set_title("Table 7: training time against h")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, folder / "seconds_vs_h.png")


def all_plots(ours: Seeds, paper: Paper, folder: Path) -> list[Path]:
    made = [recall_curves(ours, paper, folder), sweep(ours, paper, folder, 8), sweep(ours, paper, folder, 9),
            seconds(ours, paper, folder)]
    return [p for p in made if p is not None]
