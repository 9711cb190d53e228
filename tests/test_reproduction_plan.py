"""The reproduction's plan, the paper's figures and the report's arithmetic, without Ray."""

from __future__ import annotations

import pytest

from mikgnn.reproduction.cells import plan
from mikgnn.reproduction.claims import check_claims
from mikgnn.reproduction.collected import Collected
from mikgnn.reproduction.paper import figures, paper_value
from mikgnn.reproduction.report import _cell_text, to_html, to_markdown
from mikgnn.reproduction.tables import TABLES, parse_tables


def test_every_table_row_has_its_papers_figures():
    table = figures()
    for number, spec in TABLES.items():
        for system in spec.systems:
            if not system.in_paper or (number == 3 and system.label not in
                                        ("MI-KGNN", "KGIN", "AGCN", "CKAN", "KGAT", "KGCN-LS")):
                continue
            for column in spec.columns:
                assert (number, "music", system.label, column) in table, (number, system.label, column)
    assert paper_value(2, "music", "MI-KGNN", "recall@20") == 0.224
    assert paper_value(7, "movie1m", "FMK", "seconds@h4") == 88754  # movie1m is compared with movie
    assert paper_value(4, "restaurant", "KGAT", "auc") is None  # the paper's '/'
    assert paper_value(2, "my-folder", "MI-KGNN", "recall@20") is None


def test_cells_shared_between_tables_train_once():
    p = plan("music", (2, 5, 8, 9), (0, 1))
    keys = [c.key for c in p.cells]
    assert len(keys) == len(set(c.identity for c in p.cells))
    shared = [c for c in p.cells if c.key == "accuracy:mikgnn:n8:h1:seed0"]
    assert len(shared) == 1
    assert set(shared[0].slots) == {"2=MI-KGNN", "5=MI-KGNN", "8=MI-KGNN|n8", "9=MI-KGNN|h1"}
    # 15 systems + 3 ablations + 4 more n + 3 more h, per seed
    assert len(p.cells) == 2 * (15 + 3 + 4 + 3)


def test_settings_change_the_identity_and_max_field_leaves_cells_out():
    a = plan("music", (4,), (0,), models=("mikgnn",)).cells[0]
    b = plan("music", (4,), (0,), {"train": {"lr": 0.01}}, models=("mikgnn",)).cells[0]
    assert a.key == b.key and a.identity != b.identity
    logged = plan("music", (4,), (0,), {"train": {"topk_every": 1}}, models=("mikgnn",)).cells[0]
    assert logged.train.topk_every == 1 and a.train.topk_every == 0 and logged.identity == a.identity
    # the identity of a cell run before (reproduce-music's MLflow runs carry it): reruns find them done
    assert a.identity == "accuracy:mikgnn:n8:h1:seed0#7a1dc4a9f6"
    p = plan("music", (9,), (0,), max_field=64)
    assert [c.model.hops for c in p.cells] == [1, 2]
    assert [slot for slot, _ in p.skipped] == ["9=MI-KGNN|h3", "9=MI-KGNN|h4"]
    assert "512 > max_field 64" in p.skipped[0][1]
    only = plan("music", (4,), (0,), models=("mf",))
    assert len(only.cells) == 1 and ("4=KGAT", "not run: left out by --models") in only.skipped
    baselines = plan("music", (2,), (0,), max_field=8)  # KGAT's 3 hops propagate over the graph: no field
    assert not baselines.skipped and len(baselines.cells) == 15
    timing = plan("music", (7,), (0, 1, 2), max_field=4096)
    assert {c.seed for c in timing.cells} == {0} and len(timing.cells) == 8 * 4
    assert all(c.train.protocol == "sampled" for c in timing.cells)


def test_bad_table_is_refused():
    assert parse_tables("9, 2,2") == (2, 9)
    with pytest.raises(ValueError, match="unknown table '10'"):
        parse_tables("2,10")


def test_claims_from_the_papers_own_table_and_ours():
    def paper(t, row, column):
        return figures().get((t, "music", row, column))

    claims = check_claims(paper, "music")
    by_text = {c.text.split(" ")[0] + str(c.table): c for c in claims}
    margin = by_text["MI-KGNN's2"]
    assert margin.paper_says == "+6.66 %" and margin.paper_table.startswith("+6.26 %")  # the text says 6.66
    assert margin.ours == margin.paper_table and margin.holds is True
    assert by_text["w-r-FMK6"].ours == "w-r-FMK" and by_text["w-r-FMK6"].holds
    # ours: MI-KGNN below the best baseline -> the claim does not hold
    def worse(t, row, column):
        value = paper(t, row, column)
        return value * 0.5 if value is not None and row == "MI-KGNN" else value

    assert next(c for c in check_claims(worse, "music") if c.table == 2).holds is False


def test_cell_text_marks_a_paper_figure_outside_our_spread():
    assert _cell_text(2, [0.20, 0.21, 0.22], 0.21, None) == "0.2100 ± 0.0100 (0.21; +0.0 %)"
    assert _cell_text(2, [0.20, 0.21, 0.22], 0.30, None).endswith("†")
    assert _cell_text(2, [], 0.30, "not run: why") == "not run: why"
    assert _cell_text(7, [1.0, 1.2], 29, None) == "1.1 ± 0.1 (paper 29)"


def test_report_renders_markdown_and_html(tmp_path):
    from mikgnn.reproduction.report import build

    data = Collected("reproduce-music", "music", values={(4, "MI-KGNN", "auc"): {0: 0.81, 1: 0.82}}, seeds={0, 1})
    blocks = build(data, tmp_path, {"movie": "not run: data absent"})
    md, page = to_markdown(blocks), to_html(blocks, tmp_path)
    assert "| MI-KGNN | 0.8150 ± 0.0071 (0.803; +1.5 %) | 0,1 |" in md
    assert "<td>0.8150 ± 0.0071 (0.803; +1.5 %)</td>" in page
    assert "movie: not run: data absent" in md


def test_a_cell_that_did_not_finish_says_why_once_below_its_table(tmp_path):
    """A cell run that failed is shown as such (not as an earlier command's "left out"), with
    its reason once under the table; a slot with a finished value shows the value."""
    from mikgnn.reproduction.report import build

    data = Collected("reproduce-music", "music", values={(4, "MI-KGNN", "auc"): {0: 0.81}}, seeds={0},
                     skipped={"4=KGAT": "not run: left out by --models"},
                     unfinished={"4=KGAT": ("failed", "stopped by hand"), "4=MI-KGNN": ("killed", "")})
    md = to_markdown(build(data, tmp_path, {}))
    table4 = md.split("## Table 4")[1].split("## Table 5")[0]
    assert "| KGAT | not finished (failed) | - |" in table4 and "left out" not in table4
    assert table4.count("stopped by hand") == 1 and "- KGAT: not finished, failed: stopped by hand" in table4
    assert "| MI-KGNN | 0.8100 (0.803; +0.9 %) † | 0 |" in table4 and "MI-KGNN: not finished" not in table4
