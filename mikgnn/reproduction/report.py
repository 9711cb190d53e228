"""A reproduction's report: ``report.md``, a self-contained ``report.html`` (its PNGs inlined)
and the PNGs, from what ``distributed.reproduction_store.collect`` read out of MLflow.

Every table shows, per cell, our mean ± std over seeds, then the paper's figure and our
difference from it, relative to it; a † marks a cell where the paper's figure lies outside our
spread (mean ± 2 std over seeds; with one seed, anywhere but our value). Table 7's seconds
come from other hardware than the paper's and carry no difference or mark.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mikgnn.reproduction.claims import check_claims
from mikgnn.reproduction.collected import Collected
from mikgnn.reproduction.paper import COMPARED_WITH, PAPER_DATASETS, paper_value
from mikgnn.reproduction.plots import all_plots
from mikgnn.reproduction.tables import TABLES

PROTOCOL = ("Accuracy cells (Tables 2-6, 8, 9): each model at its own defaults over the paper's Table 1 "
            "(docs/baselines.md), the fixed 3:1:1 split of the seed, early stopping on validation AUC "
            "(patience 5, at most 40 epochs unless the command says otherwise), test metrics of the best "
            "epoch, Recall@K and NDCG@K under full ranking of every test user. Timing cells (Table 7): "
            "the median seconds of a training epoch (evaluation excluded) over the cell's epochs, "
            "one cell at a time on the machine named below.")


@dataclass(frozen=True)
class Block:
    kind: str  # h1 | h2 | p | table | img | list
    content: object


def _cell_text(table: int, values: list[float], paper: float | None, skipped: str | None) -> str:
    if not values:
        return skipped or "no finished run"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    digits = 1 if table == 7 else 4
    ours = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if len(values) > 1 else "")
    if paper is None:
        return ours
    if table == 7:
        return f"{ours} (paper {paper:g})"
    outside = abs(paper - mean) > 2 * std if len(values) > 1 else abs(paper - mean) > 5e-5
    diff = f"{100 * (mean / paper - 1):+.1f} %" if paper else "n/a"
    return f"{ours} ({paper:g}; {diff}){' †' if outside else ''}"


def _table_block(number: int, data: Collected) -> list[Block]:
    spec = TABLES[number]
    header = ["model"] + [c.replace("@n", " n=").replace("@h", " h=") for c in spec.columns] + ["seeds"]
    rows, notes = [], {}
    for system in spec.systems:
        row = [system.label + ("" if system.in_paper else " (not in the paper)")]
        seeds: set[int] = set()
        for column in spec.columns:
            got = data.values.get((number, system.label, column), {})
            seeds |= set(got)
            skip_key = f"{number}={system.label}" + ("" if spec.axis is None else
                                                      "|" + column.rsplit("@", 1)[1])
            ended = data.unfinished.get(skip_key)
            if ended and not got:
                status, reason = ended
                notes.setdefault(f"{system.label}" + ("" if spec.axis is None else f" {skip_key.split('|')[1]}"),
                                 status + (f": {reason}" if reason else ""))
            row.append(_cell_text(number, list(got.values()), paper_value(number, data.dataset, system.label, column),
                                  f"not finished ({ended[0]})" if ended else data.skipped.get(skip_key)))
        rows.append(row + [",".join(map(str, sorted(seeds))) or "-"])
    blocks = [Block("h2", f"Table {number}: {spec.title}"), Block("table", (header, rows))]
    if notes:
        blocks.append(Block("list", [f"{row}: not finished, {ended}" for row, ended in notes.items()]))
    return blocks


def _attention_note(data: Collected) -> str:
    """Whether the attention learned anything: its entropy and the relation norms, per row."""
    parts = []
    for system in TABLES[5].systems:
        entropy = data.values.get((5, system.label, "attention_entropy"), {})
        norm = data.values.get((5, system.label, "relation_norm"), {})
        if entropy:
            parts.append(f"{system.label} {statistics.fmean(entropy.values()):.4f}"
                         + (f" (relation norm {statistics.fmean(norm.values()):.2g})" if norm else ""))
    if not parts:
        return "No attention diagnostics were logged."
    return ("Attention entropy at the last epoch, 1 = uniform weights over the n neighbours (docs/model.md): "
            + "; ".join(parts) + ". Rows with entropy 1 weigh every neighbour alike, whatever their attention "
            "switches say, so they train the same model.")


def _datasets_block(data: Collected, others: dict[str, str]) -> list[Block]:
    rows = []
    for paper in PAPER_DATASETS:
        ours = [d for d, (p, _) in COMPARED_WITH.items() if p == paper]
        status = []
        for dataset in ours:
            if dataset == data.dataset:
                status.append(f"{dataset}: this report")
            else:
                status.append(f"{dataset}: {others.get(dataset, 'not run')}")
        rows.append([paper, "; ".join(status)])
    return [Block("h2", "The paper's datasets"), Block("table", (["paper's dataset", "here"], rows))]


def build(data: Collected, folder: Path, others: dict[str, str] | None = None, tracking: str = "") -> list[Block]:
    """The report's blocks; writes its PNGs into ``folder``."""
    def seeds(t: int, row: str, column: str) -> list[float]:
        return list(data.values.get((t, row, column), {}).values())

    def paper(t: int, row: str, column: str) -> float | None:
        return paper_value(t, data.dataset, row, column)

    def mean(t: int, row: str, column: str) -> float | None:
        got = seeds(t, row, column)
        return statistics.fmean(got) if got else None

    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    compared = COMPARED_WITH.get(data.dataset, (None, "no dataset of the paper: our figures alone"))[1]
    blocks = [Block("h1", f"Reproduction of MI-KGNN's Tables 2-9 on {data.dataset}"),
              Block("p", f"Compared with: {compared}. Seeds: {sorted(data.seeds) or 'none'}. MLflow experiment "
                         f"'{data.experiment}'{tracking}; generated {generated}"
                         " by pipelines/report.py, from MLflow alone."),
              Block("p", PROTOCOL),
              Block("p", "Cells: ours mean ± std over seeds (the paper's figure; our difference from it, relative). "
                         "† : the paper's figure lies outside our mean ± 2 std (one seed: differs from ours)."),
              Block("list", [f"`{c}`" for c in data.commands] or ["no reproduction command recorded"])]
    blocks += _datasets_block(data, others or {})
    blocks.append(Block("h2", "The paper's claims, checked"))
    claims = check_claims(mean, data.dataset)
    blocks.append(Block("table", (["table", "claim", "paper's text", "from the paper's table", "ours", "holds here"],
                                  [[str(c.table), c.text, c.paper_says or "-", c.paper_table, c.ours,
                                    {True: "yes", False: "**no**", None: "-"}[c.holds]] for c in claims])))
    for number in TABLES:
        blocks += _table_block(number, data)
        if number == 7:
            where = "; ".join(sorted(data.hardware)) or "no timing cell ran"
            blocks.append(Block("p", f"Our hardware: {where}. The paper's: one GTX 1080 Ti, TensorFlow 1.12."))
        if number == 5:
            blocks.append(Block("p", _attention_note(data)))
        if number == 6:
            blocks.append(Block("p", "At h = 1 (Table 1) the receptive-field (r) and layer-by-layer (l) strategies "
                                     "change nothing: every hop is the first. Only a (φ = identity) acts."))
    blocks.append(Block("h2", "Figures"))
    for path in all_plots(seeds, paper, folder):
        blocks.append(Block("img", path.name))
    return blocks


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.content}")
        elif b.kind == "h2":
            out.append(f"## {b.content}")
        elif b.kind == "p":
            out.append(str(b.content))
        elif b.kind == "list":
            out.append("\n".join(f"- {item}" for item in b.content))
        elif b.kind == "table":
            out.append(_md_table(*b.content))
        elif b.kind == "img":
            out.append(f"![{b.content}]({b.content})")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` in one table cell or paragraph, as escaped HTML."""
    parts = html.escape(str(text)).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = out.split("**")
    out = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(bold))
    # [text](other/report.md): a link to that report's HTML beside it
    return re.sub(r"\[([^\]]+)\]\(([^)]+?)(\.md)?\)", lambda m: f'<a href="{m.group(2)}'
                  f'{".html" if m.group(3) else ""}">{m.group(1)}</a>', out)


def to_html(blocks: list[Block], folder: Path) -> str:
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{html.escape(str(b.content))}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "table":
            header, rows = b.content
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        elif b.kind == "img":
            data = base64.b64encode((folder / b.content).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(b.content)}" src="data:image/png;base64,{data}"></figure>')
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 6px}"
             "th{background:#eee}img{max-width:100%}")
    title = html.escape(str(next((b.content for b in blocks if b.kind == "h1"), "report")))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def write_report(data: Collected, folder: Path, others: dict[str, str] | None = None, tracking: str = "") -> Path:
    """Write report.md, report.html and the PNGs into ``folder``, whole or not at all: into a
    staging folder beside it, which then replaces it. Returns report.md."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        blocks = build(data, staging, others, tracking)
        (staging / "report.html").write_text(to_html(blocks, staging))
        (staging / "report.md").write_text(to_markdown(blocks))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / "report.md"
