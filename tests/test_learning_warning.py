"""A run that is not learning says so: the loss has barely moved and the validation metric is
flat. It names the likely cause and the flag to change, in train.py's output and metrics.json,
and as the MLflow tag of a search's trial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_data, write_movie

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.experiment import FitState, build, convergence_warning, fit, learning_warning

REPO = Path(__file__).resolve().parents[1]
def _history(losses, aucs):
    return [{"train/loss": loss, "valid/auc": auc} for loss, auc in zip(losses, aucs)]


def test_a_flat_loss_and_a_flat_metric_is_not_learning():
    warning = learning_warning(_history([0.6931, 0.6930, 0.6930, 0.6929, 0.6929], [0.55, 0.56, 0.56, 0.56, 0.56]),
                               TrainConfig(lr=5e-4, l2=9.1e-5))
    assert warning is not None and "moved 0.0 %" in warning
    assert "--set lr=0.005" in warning and "--set l2=9.1e-06" in warning and "--set init_std=0.1" in warning


@pytest.mark.parametrize("losses,aucs", [
    ([0.6931, 0.6930, 0.6928, 0.6916, 0.6879], [0.521, 0.628, 0.763, 0.801, 0.805]),  # MI-KGNN's music start
    ([0.6931, 0.6930, 0.6930, 0.6929, 0.6929], [0.60, 0.63, 0.66, 0.68, 0.695]),  # still climbing
    ([0.6931, 0.60, 0.55, 0.52, 0.50], [0.60, 0.60, 0.60, 0.60, 0.60]),  # the loss moves: it learns something
    ([0.6931, 0.6931, 0.6931, 0.6931], [0.5, 0.5, 0.5, 0.5]),  # too early to tell
])
def test_a_run_that_moves_is_not_flagged(losses, aucs):
    assert learning_warning(_history(losses, aucs), TrainConfig()) is None


def test_a_deliberately_bad_learning_rate_is_reported_once_and_kept():
    data = tiny_data()
    cfg = TrainConfig(lr=1e-9, batch_size=32, epochs=8, patience=8)
    result = fit(build(data, ModelConfig(dim=8, n_neighbours=4), cfg), cfg)
    flagged = [w for w in result["warnings"] if w.startswith("not learning")]
    assert len(flagged) == 1 and flagged[0].startswith("not learning: after 5 epochs")
    good = TrainConfig(lr=2e-2, batch_size=32, epochs=8, patience=8)
    warnings = fit(build(data, ModelConfig(dim=8, n_neighbours=4), good), good)["warnings"]
    assert not [w for w in warnings if w.startswith("not learning")]


def test_train_py_prints_it_and_writes_it_to_metrics_json(tmp_path):
    write_movie(tmp_path / "raw", n_users=40)
    done = subprocess.run([sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", "movie",
                           "--data-root", str(tmp_path / "raw"),
                           "--processed", str(tmp_path / "processed"), "--output", str(tmp_path / "run"),
                           "--epochs", "6", "--set", "patience=6", "--set", "lr=1e-9"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "warning: not learning: after 5 epochs" in done.stdout + done.stderr
    assert "--set lr=1e-08" in done.stdout + done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len([w for w in metrics["warnings"] if "not learning" in w]) == 1


@pytest.mark.ray
def test_a_search_trial_that_is_not_learning_carries_the_warning_in_mlflow(ray_local, tmp_path):
    from mlflow.tracking import MlflowClient

    write_movie(tmp_path / "raw", n_users=40)
    (tmp_path / "space.yaml").write_text("lr: {type: loguniform, low: 1.0e-9, high: 2.0e-9}\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", "movie", "--data-root",
                           str(tmp_path / "raw"), "--space", str(tmp_path / "space.yaml"), "--num-samples", "1",
                           "--epochs", "6", "--set", "patience=6", "--processed", str(tmp_path / "processed"),
                           "--storage-path", str(tmp_path / "ray"), "--tracking-uri", uri,
                           "--address", ray_local.get_runtime_context().gcs_address],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("movie")
    trial = client.search_runs([exp.experiment_id], filter_string="tags.`mikgnn.kind` = 'trial'")[0]
    assert trial.data.tags["mikgnn.warning"].startswith("not learning: after 5 epochs")


@pytest.mark.parametrize("epoch,best_epoch,waited,flagged", [
    (20, 20, 0, True),  # the budget ended it at its best epoch
    (20, 17, 3, True),  # best within the last patience (5) epochs
    (20, 15, 5, False),  # early stopping's own end: patience ran out
    (20, 12, 8, False),  # impossible with patience 5, but not rising either
    (12, 12, 0, False),  # early stopping ended it before the budget (a run of 20 stopped at 12)
])
def test_not_converged_when_the_budget_not_early_stopping_ends_a_rising_run(epoch, best_epoch, waited, flagged):
    state = FitState(epoch=epoch, best_epoch=best_epoch, waited=waited)
    warning = convergence_warning(state, TrainConfig(epochs=20, patience=5))
    assert (warning is not None) == flagged
    if flagged:
        assert warning.startswith(f"not converged: validation AUC still rising at epoch {best_epoch} of 20")
        assert "raise --epochs" in warning


def test_patience_longer_than_the_budget_flags_only_the_last_half():
    cfg = TrainConfig(epochs=8, patience=8)
    assert convergence_warning(FitState(epoch=8, best_epoch=2, waited=6), cfg) is None
    assert convergence_warning(FitState(epoch=8, best_epoch=6, waited=2), cfg) is not None


def test_a_run_creeping_up_by_less_than_min_delta_has_converged():
    """Music at Table 1's lr gains about 5e-5 validation AUC an epoch after 100 epochs
    (docs/benchmarks.md): with min_delta such a run stops, keeping the weights of its highest
    epoch; with min_delta 0 (a reproduction's cells) any gain counts."""
    model = torch.nn.Linear(1, 1)
    curve = [0.70, 0.75, 0.78, *(0.78 + 5e-5 * k for k in range(1, 8))]

    def stopped_at(cfg: TrainConfig) -> tuple[int | None, int]:
        state = FitState()
        for epoch, auc in enumerate(curve, 1):
            if state.update({"epoch": epoch, "valid/auc": auc}, model, cfg):
                return epoch, state.best_epoch
        return None, state.best_epoch

    assert stopped_at(TrainConfig(patience=5, min_delta=5e-4)) == (8, 8)  # 5 epochs after epoch 3, no 5e-4 gain
    assert stopped_at(TrainConfig(patience=5, min_delta=0.0)) == (None, 10)  # every creep resets patience
    with pytest.raises(ValueError, match="min_delta must lie in"):
        TrainConfig(min_delta=-1e-4)


@pytest.mark.slow
def test_train_py_says_when_the_budget_ended_a_rising_run(shared_data, tmp_path):
    """Music's first epochs climb (AUC 0.52, 0.63, 0.76): 3 epochs end it still rising."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, str(REPO / "pipelines" / "train.py"), "--dataset", "music",
                           "--data-root", str(shared_data), "--processed", str(tmp_path / "processed"),
                           "--output", str(tmp_path / "run"), "--epochs", "3", "--set", "protocol=sampled",
                           "--tracking-uri", uri], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    said = "not converged: validation AUC still rising at epoch 3 of 3"
    assert f"warning: {said}" in done.stderr
    assert any(w.startswith(said) for w in json.loads((tmp_path / "run" / "metrics.json").read_text())["warnings"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("music").experiment_id])
    assert said in run.data.tags["mikgnn.warning"]


@pytest.mark.slow
def test_uniform_attention_is_flagged_and_attention_that_learns_is_not(shared_data, tmp_path, monkeypatch):
    """MI-KGNN's defaults on music keep the KG attention exactly uniform (docs/model.md); the
    settings measured to let it learn (l2_relations=false, dot logits, logit scale 1000, FMK a)
    bring its entropy down by epoch 6, and the warning does not fire."""
    import mikgnn

    monkeypatch.chdir(tmp_path)
    data = mikgnn.load("music", data_root=shared_data)
    uniform = mikgnn.fit(data, epochs=6, verbose=False, protocol="sampled", patience=6)
    flagged = [w for w in uniform.result["warnings"] if w.startswith("uniform attention")]
    assert len(flagged) == 1 and "MI-KGNN is acting as KGCN-avg here" in flagged[0]
    assert "--set l2_relations=false --set logits=dot --set logit_scale=1000 --variant w-a" in flagged[0]
    learning = mikgnn.fit(data, epochs=6, verbose=False, protocol="sampled", patience=6, l2_relations=False,
                          logits="dot", logit_scale=1000, pruned=True)
    assert not [w for w in learning.result["warnings"] if w.startswith("uniform attention")]
    assert learning.result["history"][-1]["attention_entropy_distinct"] < 0.999


def test_a_collapsed_run_is_flagged_from_its_second_epoch():
    from mikgnn.experiment import collapse_warning

    flat = [{"train/loss": 0.693147, "item_norm": 0.0}] * 2
    warning = collapse_warning(flat, TrainConfig(l2=7.8e-4))
    assert warning.startswith("collapsed: at epoch 2 the training loss is log 2") and "--set l2=7.8e-06" in warning
    assert collapse_warning(flat[:1], TrainConfig()) is None  # too early
    assert collapse_warning([{"train/loss": 0.693147, "item_norm": 0.3}] * 2, TrainConfig()) is None  # it moves
