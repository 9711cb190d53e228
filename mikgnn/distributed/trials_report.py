"""The search run's view of all its trials, read back from their MLflow runs once it ends:

    trials.csv                   every trial, best first: searched values, status, metrics, run id
    parallel_coordinates.png     the searched values against the validation metric, one line a
    parallel_coordinates.html    trial; a value searched over decades on a log10 axis (HTML:
                                 the same plot as SVG above the table, no script, works offline)

A trial's metric is its best epoch's (``best/``) when it finished, else its last report's (the
epoch at which the scheduler stopped it).
"""

from __future__ import annotations

import csv
import html
import io
import math
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient

from mikgnn.distributed.tracking import EARLY_STOP_TAG, KIND_TAG, SEARCH_TAG, TRIAL_TAG, WARNING_TAG, metric_key

SHOWN = ("valid/auc", "test/recall@20", "test/ndcg@20", "test/auc")


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def trial_rows(client: MlflowClient, experiment_id: str, search: str, searched: list[str],
               metric: str) -> list[dict]:
    """Every trial run of ``search``, best ``metric`` first (trials without it last)."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{search}' and "
                              f"tags.`{KIND_TAG}` = 'trial'")
    rows = []
    for run in runs:
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        status = ("stopped early" if EARLY_STOP_TAG in tags else "not converged"
                  if "not converged" in tags.get(WARNING_TAG, "") else run.info.status.lower())
        row = {"trial": tags.get(TRIAL_TAG, ""), "status": status} | {k: params.get(k, "") for k in searched}
        for key in (metric, *SHOWN):
            name = metric_key(key)
            row[key] = metrics.get(f"best/{name}", metrics.get(name))
        rows.append(row | {"run_id": run.info.run_id})
    return sorted(rows, key=lambda r: -r[metric] if isinstance(r[metric], float) and math.isfinite(r[metric])
                  else math.inf)


def _axes(rows: list[dict], searched: list[str], logs: set[str]) -> list[tuple[str, list[float | None], bool]]:
    """(name, value of each row, log10 axis) of each searched value that varies across trials."""
    out = []
    for name in searched:
        values = [_number(r[name]) for r in rows]
        log = name in logs and all(v is None or v > 0 for v in values)
        values = [None if v is None else math.log10(v) if log else v for v in values]
        if len({v for v in values if v is not None}) > 1:
            out.append((name, values, log))
    return out


def plot(rows: list[dict], searched: list[str], logs: set[str], metric: str, png: Path) -> str:
    """The parallel-coordinates plot into ``png``; its SVG text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = _axes(rows, searched, logs) + [(metric, [r[metric] for r in rows], False)]
    scores = [v for v in axes[-1][1] if v is not None and math.isfinite(v)]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    fig, ax = plt.subplots(figsize=(1.6 * len(axes) + 2, 4.5))
    spans = []
    for _, values, _ in axes:
        known = [v for v in values if v is not None and math.isfinite(v)]
        spans.append((min(known), max(known)) if known else (0.0, 1.0))
    for i, row in enumerate(rows):
        points = [(x, 0.5 if hi == lo else (values[i] - lo) / (hi - lo))
                  for x, ((_, values, _), (lo, hi)) in enumerate(zip(axes, spans))
                  if values[i] is not None and math.isfinite(values[i])]
        score = row[metric]
        scored = isinstance(score, float) and math.isfinite(score)
        colour = plt.cm.viridis((score - low) / (high - low) if scored and high > low else 1.0) if scored else "grey"
        ax.plot(*zip(*points), color=colour, alpha=0.9, linestyle="-" if scored else ":", marker="o", markersize=3)
    for x, ((_, _, log), (lo, hi)) in enumerate(zip(axes, spans)):
        ax.axvline(x, color="black", linewidth=0.8)
        for y, value in ((0, lo), (1, hi)):
            ax.annotate(f"{10 ** value:.1e}" if log else f"{value:.4g}", (x, y), textcoords="offset points",
                        xytext=(3, -12 if y == 0 else 4), fontsize=8)
    ax.set_xticks(range(len(axes)), [f"{name} (log10)" if log else name for name, _, log in axes])
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_title(f"{len(rows)} trials: searched values against {metric} (grey: no {metric})")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    svg = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # the SVG's labels stay text: searchable, a third the size
        fig.savefig(svg, format="svg")
    plt.close(fig)
    return svg.getvalue()


def _html(rows: list[dict], columns: list[str], svg: str, title: str) -> str:
    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value if value is not None else ""))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in columns) + "</tr>" for r in rows)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif} td,th{padding:2px 8px;text-align:right}</style></head><body>"
            f"<h2>{html.escape(title)}</h2>{svg[svg.find('<svg'):]}<table><tr>{head}</tr>{body}</table></body></html>")


def log_trials_report(client: MlflowClient, run_id: str, experiment_id: str, search: str, searched: list[str],
                      logs: set[str], metric: str) -> list[dict]:
    """trials.csv and the parallel-coordinates plot (PNG, HTML) as artifacts of the search run
    ``run_id``; ``logs``: the searched names on a log10 axis. The rows, best first."""
    rows = trial_rows(client, experiment_id, search, searched, metric)
    if not rows:
        return rows
    columns = ["trial", "status", *searched, metric, *SHOWN, "run_id"]
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "trials.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
        svg = plot(rows, searched, logs, metric, Path(tmp) / "parallel_coordinates.png")
        (Path(tmp) / "parallel_coordinates.html").write_text(_html(rows, columns, svg, f"search {search}"))
        client.log_artifacts(run_id, tmp)
    return rows
