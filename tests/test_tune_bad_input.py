"""pipelines/tune.py refuses bad input before any trial starts: one line naming the flag, or the
file and key, exit code 2, no traceback, and no search left behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMPTY_CHOICE = "n: {type: choice, values: []}\n"
INF_BOUND = "lambda: {type: loguniform, low: 1.0e-8, high: .inf}\n"
GRID = "field: {type: grid, values: [[2, 1], [4, 1]]}\n"


def _tune(tmp_path: Path, shared_data: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "pipelines" / "tune.py"), "--dataset", "music",
                           "--data-root", str(shared_data), "--storage-path", str(tmp_path / "ray_results"),
                           "--processed", str(tmp_path / "processed"), *extra],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("extra,named", [
    (("--num-samples", "0"), "--num-samples = 0: must be an integer >= 1"),
    (("--epochs", "0"), "--epochs = 0: must be an integer >= 1"),
    (("--workers-per-trial", "0"), "--workers-per-trial = 0: must be an integer >= 1"),
    (("--set", "cpus_per_worker=0"), "the flags: cpus_per_worker must be > 0, got 0.0"),
    (("--set", "max_concurrent=0"), "the flags: max_concurrent must be >= 1, got 0"),
    (("--set", "stall_timeout=-1"), "the flags: stall_timeout must be >= 0 seconds"),
    (("--set", "scheduler=hyperband"), "unknown scheduler 'hyperband': choose one of ['asha', 'fifo']"),
    (("--set", "max_field=many"), "--set 'max_field=many': search.max_field = 'many': expected int"),
    (("--set", "epoch=3"), "--set 'epoch=3': unknown key 'epoch'"),
    (("--tracking-uri", "http://127.0.0.1:9"), "--tracking-uri http://127.0.0.1:9: no MLflow server answered"),
    (("--tracking-uri", "http://user:secret@127.0.0.1:9"), "--tracking-uri http://***@127.0.0.1:9"),
    (("--space", "{empty}"), "'n': 'choice' needs a non-empty list 'values'"),
    (("--space", "{inf}"), "'lambda': 'high' = inf is not a number >= 0 (finite)"),
    (("--config", "{config}"), "config.yaml: unknown key train.epoch: train takes"),
    (("--space", "{grid}"), "grid.yaml: a 'grid' dimension is a sweep of every value; run it with --set search=random"),
], ids=["num-samples", "epochs", "workers", "cpus", "max-concurrent", "stall", "scheduler", "type", "unknown-key",
        "tracking", "tracking-password",
        "empty-choice", "inf-bound", "config-key", "grid-with-optuna"])
def test_refused_before_ray_starts(tmp_path, shared_data, extra, named):
    (tmp_path / "empty.yaml").write_text(EMPTY_CHOICE)
    (tmp_path / "inf.yaml").write_text(INF_BOUND)
    (tmp_path / "config.yaml").write_text("train: {epoch: 3}\n")
    (tmp_path / "grid.yaml").write_text(GRID)
    extra = [e.format(empty=tmp_path / "empty.yaml", inf=tmp_path / "inf.yaml", config=tmp_path / "config.yaml",
                      grid=tmp_path / "grid.yaml") for e in extra]
    start = time.monotonic()
    done = _tune(tmp_path, shared_data, *extra)
    assert done.returncode == 2, done.stderr[-2000:]
    assert named in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr + done.stdout
    assert time.monotonic() - start < 60
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "processed").exists()
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.ray
def test_gpus_that_the_cluster_lacks_are_refused_before_any_trial(tmp_path, shared_data, ray_local):
    done = _tune(tmp_path, shared_data, "--gpus-per-worker", "1", "--tracking-uri",
                 f"sqlite:///{tmp_path / 'mlflow.db'}", "--address", ray_local.get_runtime_context().gcs_address)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "a trial needs 1 GPUs, the cluster has 0" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ray_results").exists()
