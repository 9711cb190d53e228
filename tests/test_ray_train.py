"""Ray Train (real local Ray, gloo): 2 workers agree with 1, and a worker killed mid-training
resumes from its checkpoint with no epoch lost or logged twice."""

from __future__ import annotations

from dataclasses import replace

import pytest
from mlflow.tracking import MlflowClient
from test_model import tiny_data

from mikgnn.config import ModelConfig, ParallelConfig, TrainConfig
from mikgnn.processed import save_processed

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MODEL = ModelConfig(dim=8, n_neighbours=4, hops=1)
TRAIN = TrainConfig(lr=2e-2, batch_size=64, l2=1e-6, epochs=8, patience=8, protocol="full")


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    return save_processed(tiny_data(n_users=160, per_user=8), tmp_path_factory.mktemp("data") / "tiny")


def _fit(processed, tmp_path, workers, **kw):
    from mikgnn.distributed.trainer import make_trainer

    trainer = make_trainer(processed, MODEL, kw.pop("train", TRAIN), workers=workers,
                           storage_path=tmp_path / "ray", name=f"w{workers}", **kw)
    return trainer.fit().metrics


@pytest.fixture(scope="module")
def one_worker(ray_local, processed, tmp_path_factory):
    return _fit(processed, tmp_path_factory.mktemp("one"), 1)


@pytest.mark.parametrize("parallel", [ParallelConfig(), ParallelConfig(overlap=True, batch_per_worker=True),
                                      ParallelConfig(sync_every=4, batch_per_worker=True)],
                         ids=["gradients-every-step", "overlapped", "local-sgd"])
def test_two_workers_match_one(one_worker, processed, tmp_path, parallel):
    two = _fit(processed, tmp_path, 2, parallel=parallel)
    for m in (one_worker, two):
        assert m["done"] and m["test/auc"] > 0.8
    assert abs(one_worker["test/auc"] - two["test/auc"]) < 0.05
    assert abs(one_worker["valid/auc"] - two["valid/auc"]) < 0.05
    assert len(two["worker_nodes"].split(",")) == 2 and two["worker1/peak_rss_mib"] > 0


def test_worker_crash_resumes_from_checkpoint(ray_local, processed, tmp_path):
    from mikgnn.distributed.tracking import TrialTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = TrialTracker.open(uri, "crash", "trial-1", "crash-run", {"theta": 0.9})
    marker = tmp_path / "crashed"
    train = replace(TRAIN, epochs=5, patience=5)
    metrics = _fit(processed, tmp_path, 2, train=train, max_failures=2,
                   extra_config={"epoch_logger": tracker,
                                 "crash_once": {"epoch": 3, "world": 2, "marker": str(marker)}})
    assert marker.exists()  # a worker process really died at epoch 3
    assert metrics["done"] and metrics["epoch"] == 5
    history = MlflowClient(uri).get_metric_history(tracker.run_id, "valid/auc")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]  # none lost, none twice
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and "test/auc" in run.data.metrics
