"""A custom dataset's defaults follow its size (mikgnn/size_rule.py); --preset picks a Table 1 column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_custom

from mikgnn.settings import resolve_settings
from mikgnn.size_rule import DataSize, size_defaults

REPO = Path(__file__).resolve().parents[1]
MUSIC = DataSize(train_rows=25_408, users=1_872, items=3_846)
BOOK_LIKE = DataSize(train_rows=84_000, users=18_000, items=15_000)  # issue 16's dataset


def test_a_small_dense_dataset_gets_musics_column_but_a_faster_lr():
    rule = size_defaults(MUSIC)
    t = rule.table
    assert (t.train.batch_size, t.train.lr, t.train.l2, t.train.l2_mode) == (128, 2e-3, 9.1e-5, "full")
    assert t.model.dim == 16 and t.train.protocol == "full"
    assert "25,408 training rows < 50,000" in rule.describe()


def test_a_large_catalogue_gets_the_large_regime_and_a_scaled_l2():
    rule = size_defaults(BOOK_LIKE)
    t = rule.table
    assert (t.train.batch_size, t.train.lr, t.train.l2_mode) == (1024, 2e-3, "full")
    assert t.train.l2 == pytest.approx(9.1e-5 * 3846 / 15000)  # λ x items stays music's
    assert t.model.dim == 16
    assert (t.train.protocol, t.train.eval_users) == ("sampled", 1000)
    # no epoch cap of its own: the run trains until it has converged, within TrainConfig's budget
    assert (t.train.epochs, t.train.patience, t.train.min_delta) == (100, 5, 5e-4)
    lines = rule.describe().splitlines()
    assert len(lines) == 4 and all(line.startswith(f"size rule {i + 1}: ") for i, line in enumerate(lines))
    assert "= 2.33e-05 on the full tables" in rule.describe()
    assert size_defaults(DataSize(1000, 50, 12)).table.train.l2 == 9.1e-5  # never above music's


def test_many_training_rows_scale_l2_down_as_many_items_do():
    """movie1m's size (452,264 training rows, 2,347 items): music's λ peaked at validation AUC
    0.855 in epoch 2, λ x rows kept at music's reached 0.914 (docs/benchmarks.md)."""
    rule = size_defaults(DataSize(train_rows=452_264, users=6_036, items=2_347))
    assert rule.table.train.l2 == pytest.approx(9.1e-5 * 25_408 / 452_264)
    assert "= 5.11e-06 on the full tables" in rule.describe()
    assert size_defaults(MUSIC).table.train.l2 == 9.1e-5  # music's own size: music's λ


def test_the_rule_is_a_layer_below_the_flags_and_says_so():
    s = resolve_settings("my_data", base=size_defaults(BOOK_LIKE), flags={"train": {"lr": 0.01}})
    assert s.train.lr == 0.01 and s.origin["train.lr"] == "flag"
    assert s.train.batch_size == 1024 and s.origin["train.batch_size"] == "size rule"
    assert s.origin["train.l2"] == "size rule" and s.origin["train.protocol"] == "size rule"
    assert s.origin["model.n_neighbours"] == "size rule"  # Table 1's keys come from the rule's base
    kgat = resolve_settings("my_data", "kgat", base=size_defaults(BOOK_LIKE))
    assert kgat.train.lr == 1e-4 and kgat.origin["train.lr"] == "model"  # a baseline keeps its own


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "pipelines" / "train.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_train_prints_the_rule_for_a_custom_folder_and_a_preset_replaces_it(tmp_path):
    folder = write_custom(tmp_path / "my_data")
    done = _train("--dataset", str(folder), "--epochs", "1", "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "size rule 1: " in done.stdout and "settings (the size rule < " in done.stdout
    assert "train.l2 = 9.1e-05  (size rule)" in done.stdout  # 40 rows over 12 items: dense, music's λ
    config = json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]
    assert config["origin"]["train.batch_size"] == "size rule"
    preset = _train("--dataset", str(folder), "--preset", "movie", "--epochs", "1", "--output", str(tmp_path / "p"),
                    cwd=tmp_path)
    assert preset.returncode == 0, preset.stderr[-2000:]
    assert "size rule" not in preset.stdout and "Table 1's movie column (--preset)" in preset.stdout
    config = json.loads((tmp_path / "p" / "metrics.json").read_text())["config"]
    assert (config["train"]["batch_size"], config["model"]["dim"], config["model"]["n_neighbours"]) == (1024, 32, 16)
