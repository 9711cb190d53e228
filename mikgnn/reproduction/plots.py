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


def _finish(fig, ax, path: Path, ticks: tuple[int, ...], labels: tuple[str, str, str], xscale: dict | None = None,
            log_y: bool = False) -> Path:
    """Axes (ticks, labels: x, y, title; optional log scales), legend, and the PNG."""
    if xscale is not None:
        ax.set_xscale("log", **xscale)
    if log_y:
        ax.set_yscale("log")
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(labels[2])
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _our_lines(ax, ours: Seeds, table: int, xs: tuple[int, ...], column: Callable[[int], str],
               complete: bool) -> bool:
    """One line per system of ``table``: x -> our mean over seeds of ``column(x)`` (with
    ``complete``, only systems that have every x). Whether any line was drawn."""
    drawn = False
    for i, system in enumerate(TABLES[table].systems):
        points = [(x, statistics.fmean(v)) for x in xs if (v := ours(table, system.label, column(x)))]
        if points and (not complete or len(points) == len(xs)):
            ax.plot(*zip(*points), marker="o", label=system.label, color=plt.cm.tab20(i % 20),
                    lw=2.5 if system.label == "MI-KGNN" else 1.2)
            drawn = True
    return drawn


def recall_curves(ours: Seeds, paper: Paper, folder: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = _our_lines(ax, ours, 2, KS, lambda k: f"recall@{k}", complete=True)
    theirs = [(k, paper(2, "MI-KGNN", f"recall@{k}")) for k in KS]
    if drawn and all(v is not None for _, v in theirs):
        ax.plot(*zip(*theirs), "k--", marker="x", label="MI-KGNN (paper)")
    if not drawn:
        plt.close(fig)
        return None
    return _finish(fig, ax, folder / "recall_at_k.png", KS,
                   ("K", "Recall@K (test, mean over seeds)", "Table 2: Recall@K per model"), xscale={})


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
    return _finish(fig, ax, folder / f"recall10_vs_{axis}.png", values,
                   (axis, "Recall@10", f"Table {table}: Recall@10 of MI-KGNN against {axis}"),
                   xscale={"base": 2} if axis == "n" else None)


def seconds(ours: Seeds, paper: Paper, folder: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = _our_lines(ax, ours, 7, H_VALUES, lambda h: f"seconds@h{h}", complete=False)
    for label in ("MI-KGNN", "FMK"):
        theirs = [(h, paper(7, label, f"seconds@h{h}")) for h in H_VALUES]
        theirs = [(h, y) for h, y in theirs if y is not None]
        if theirs:
            ax.plot(*zip(*theirs), "--", marker="x", label=f"{label} (paper, GTX 1080 Ti)")
    if not drawn:
        plt.close(fig)
        return None
    return _finish(fig, ax, folder / "seconds_vs_h.png", H_VALUES,
                   ("h", "seconds per training epoch", "Table 7: training time against h"), log_y=True)


def all_plots(ours: Seeds, paper: Paper, folder: Path) -> list[Path]:
    made = [recall_curves(ours, paper, folder), sweep(ours, paper, folder, 8), sweep(ours, paper, folder, 9),
            seconds(ours, paper, folder)]
    return [p for p in made if p is not None]
