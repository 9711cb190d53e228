"""The driver's one writer of trial runs (``run_owner.RunOwner``): real Tune searches on a real
local Ray where Tune decides (a finished trial, a scheduler's stop, a trial that cannot start),
and Tune's own Trial objects where a restore or an interrupt is replayed; a sqlite MLflow."""

from __future__ import annotations

import pickle
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import tiny_data
from mlflow.tracking import MlflowClient
from ray import cloudpickle as ray_cloudpickle
from ray import tune
from ray.tune.experiment import Trial

from mikgnn.distributed.run_owner import RunOwner, RunSpec, end_running
from mikgnn.distributed.search_driver import StoppedCheckpoints
from mikgnn.distributed.tracking import (
    EARLY_STOP_TAG,
    FAILURE_TAG,
    SEARCH_TAG,
    TRIAL_TAG,
    WARNING_TAG,
    compared,
    recall_plot,
)
from mikgnn.distributed.train_loop import FINAL, WARNING
from mikgnn.processed import save_processed


def _spec(trial: Trial, processed: str | None = None, added: bool = False) -> RunSpec:
    params = {"theta": trial.config.get("theta", 0.9)} | ({"train.topk_every": 0} if added else {})
    return RunSpec(str(trial), params, {"extra": "yes"}, processed=processed)


def _runs(uri: str, experiment: str = "owned") -> list:
    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], order_by=["params.theta"])


def _epochs(client: MlflowClient, run_id: str, key: str = "valid/auc") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _reports_then_finishes(config: dict) -> None:
    """A trial as train_loop reports: epochs 1-3 (epoch 2 twice, as a restarted worker group
    reports again the epoch after its checkpoint), a warning, then the final report with the
    best epoch's checkpoint."""
    import tempfile
    from pathlib import Path

    import torch

    for epoch in (1, 2, 2, 3):
        result = {"epoch": epoch, "valid/auc": 0.5 + epoch / 10, "train/loss": 1.0 / epoch, "best_epoch": epoch,
                  "valid/recall@20": 0.1, "valid/recall@10": 0.05, "attention_entropy": 1.0, "train/seconds": 2.0}
        tune.report(result | ({WARNING: "not learning"} if epoch == 3 else {}))
    with tempfile.TemporaryDirectory() as folder:
        torch.save({"model": {"w": torch.zeros(2)}, "best_state": {"w": torch.ones(2)},
                    "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}}}, Path(folder) / "state.pt")
        (Path(folder) / "config.json").write_text("{}")
        tune.report({"test/auc": 0.77, "test/recall@20": 0.2, "test/recall@50": 0.3, "test/f1": 0.6, "valid/auc": 0.8,
                     "valid/recall@20": 0.1, "valid/recall@10": 0.05, "worker0/peak_rss_mib": 99.0,
                     "best_epoch": 3, "epoch": 3, "worker_nodes": "node-a", "done": True, FINAL: True},
                    checkpoint=tune.Checkpoint.from_directory(folder))


def _climbs(config: dict) -> None:
    import tempfile

    for epoch in range(1, 5):
        with tempfile.TemporaryDirectory() as folder:
            torch.save({"model": {"w": torch.full((2,), float(epoch))}}, Path(folder) / "state.pt")
            (Path(folder) / "config.json").write_text("{}")
            tune.report({"epoch": epoch, "valid/auc": config["theta"] * epoch},
                        checkpoint=tune.Checkpoint.from_directory(folder))
    tune.report({"valid/auc": config["theta"] * 4, "epoch": 4, FINAL: True})


def _cannot_start(config: dict) -> None:
    raise RuntimeError("no module named mikgnn_on_this_node")


# Ray's workers cannot import this test module: its trainables travel by value.
ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.mark.ray
def test_a_finished_trial_holds_each_epoch_once_its_result_and_its_best_checkpoint(ray_local, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    processed = save_processed(tiny_data(n_users=20, per_user=4), tmp_path / "tiny")
    owner = RunOwner(uri, "owned", "s1", partial(_spec, processed=str(processed)), logs=partial(compared, k=20))
    tune.Tuner(tune.with_resources(_reports_then_finishes, {"CPU": 0.25}), param_space={"theta": 0.9},
               run_config=tune.RunConfig(name="s1", storage_path=str(tmp_path / "ray"), callbacks=[owner])).fit()
    (run,) = _runs(uri)
    client = MlflowClient(uri)
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("_reports_then_finishes")
    assert run.data.params == {"theta": "0.9"} and run.data.tags["extra"] == "yes"
    assert run.data.tags[SEARCH_TAG] == "s1" and run.data.tags[WARNING_TAG] == "not learning"
    assert _epochs(client, run.info.run_id) == [1, 2, 3]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "test/auc")] == [(3, 0.77)]
    assert run.data.metrics["best/valid/auc"] == 0.8 and run.data.tags["mikgnn.worker_nodes"] == "node-a"
    # the compared metrics only: no diagnostics, timings, memory, F1 or other validation Ks
    assert set(run.data.metrics) == {"train/loss", "valid/auc", "valid/recall_at_20", "test/auc", "test/recall_at_20",
                                     "test/recall_at_50", "best/valid/auc", "best/valid/recall_at_20"}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"best_checkpoint", "recall_at_k.png", "manifest.json"}
    best = client.download_artifacts(run.info.run_id, "best_checkpoint", str(tmp_path / "best"))
    assert sorted(p.name for p in Path(best).iterdir()) == ["config.json", "state.pt"]
    state = torch.load(Path(best) / "state.pt", weights_only=True)  # the best epoch's weights alone
    assert list(state) == ["model"] and state["model"]["w"].tolist() == [1.0, 1.0]
    (dataset,) = client.get_run(run.info.run_id).inputs.dataset_inputs  # its provenance
    assert dataset.dataset.name.endswith("-seed0") and dataset.dataset.digest
    assert str(processed) in dataset.dataset.source
    assert run.data.tags["mlflow.source.name"] and run.data.tags["mlflow.source.git.commit"]


@pytest.mark.ray
def test_a_trial_the_scheduler_stops_ends_finished_saying_after_which_epoch(ray_local, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    asha = tune.schedulers.ASHAScheduler(metric="valid/auc", mode="max", time_attr="training_iteration",
                                         grace_period=1, max_t=20, reduction_factor=2)
    tune.Tuner(tune.with_resources(_climbs, {"CPU": 0.25}), param_space={"theta": tune.grid_search([0.9, 0.1])},
               tune_config=tune.TuneConfig(scheduler=asha, max_concurrent_trials=1),
               run_config=tune.RunConfig(name="s2", storage_path=str(tmp_path / "ray"),
                                         checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                         callbacks=[RunOwner(uri, "owned", "s2", _spec), StoppedCheckpoints()])).fit()
    weak, strong = _runs(uri)
    folders = {run.data.params["theta"]: next((tmp_path / "ray" / "s2").glob(f"*_{run.data.tags[TRIAL_TAG]}_*"))
               for run in (weak, strong)}
    # the stopped trial keeps no checkpoint (it is never resumed); the other keeps its newest
    assert not list(folders["0.1"].glob("checkpoint_*")) and len(list(folders["0.9"].glob("checkpoint_*"))) == 1
    assert strong.info.status == "FINISHED" and _epochs(MlflowClient(uri), strong.info.run_id) == [1, 2, 3, 4]
    assert weak.info.status == "FINISHED" and FAILURE_TAG not in weak.data.tags, weak.data.tags
    assert weak.data.tags[EARLY_STOP_TAG].startswith("stopped by the search's scheduler (ASHA) after epoch 1")
    assert EARLY_STOP_TAG not in strong.data.tags and "test/auc" not in weak.data.metrics


@pytest.mark.ray
def test_a_trial_that_fails_before_its_own_code_runs_still_gets_a_failed_run(ray_local, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = tune.Tuner(tune.with_resources(_cannot_start, {"CPU": 0.25}),
                         param_space={"theta": tune.grid_search([0.1, 0.2])},
                         run_config=tune.RunConfig(name="broken", storage_path=str(tmp_path / "ray"),
                                                   callbacks=[RunOwner(uri, "owned", "broken", _spec)])).fit()
    assert results.num_errors == 2
    runs = _runs(uri)
    assert [float(r.data.params["theta"]) for r in runs] == [0.1, 0.2]
    for run in runs:
        assert run.info.status == "FAILED" and run.data.tags[SEARCH_TAG] == "broken"
        assert "no module named mikgnn_on_this_node" in run.data.tags[FAILURE_TAG]


def _trial(trial_id: str = "abcde_00000") -> Trial:
    return Trial("run_trial", config={"theta": 0.9}, trial_id=trial_id, stub=True)


def test_a_restored_search_logs_no_epoch_and_no_result_twice(tmp_path):
    """Tune pickles its callbacks with the search and restores them on resume; a trial resumed
    from an older checkpoint reports again epochs and a final result MLflow already holds."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, trial = RunOwner(uri, "owned", "s3", _spec), _trial()
    first.on_trial_start(0, [], trial)
    for epoch in (1, 2):
        first.on_trial_result(0, [], trial, {"epoch": epoch, "valid/auc": 0.6})
    first.on_trial_result(0, [], trial, {"test/auc": 0.81, "best_epoch": 2, FINAL: True})
    first.on_trial_complete(0, [], trial)
    again = pickle.loads(pickle.dumps(first))
    again.on_trial_start(0, [], trial)
    for epoch in (2, 3):
        again.on_trial_result(0, [], trial, {"epoch": epoch, "valid/auc": 0.7})
    again.on_trial_result(0, [], trial, {"test/auc": 0.79, "best_epoch": 3, FINAL: True})
    again.on_trial_complete(0, [], trial)
    (run,) = _runs(uri)
    client = MlflowClient(uri)
    assert run.info.status == "FINISHED" and _epochs(client, run.info.run_id) == [1, 2, 3]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "test/auc")] == [(2, 0.81)]


def test_a_trial_stopped_because_the_search_stops_is_ended_by_the_driver_with_its_reason(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    owner, trial = RunOwner(uri, "owned", "s4", _spec), _trial()
    owner.on_trial_result(0, [], trial, {"epoch": 1, "valid/auc": 0.6})
    owner.on_trial_complete(0, [], trial)  # Tune stops its trials on its way out of an interrupt
    assert _runs(uri)[0].info.status == "RUNNING"  # why is the driver's to say
    end_running(uri, "owned", "s4", "KILLED", "the search was interrupted")
    (run,) = _runs(uri)
    assert run.info.status == "KILLED" and run.data.tags[FAILURE_TAG] == "the search was interrupted"


def test_a_restored_trial_reopens_its_run_gaining_the_settings_added_since(tmp_path):
    """Tune restores an interrupted trial (``Tuner.restore``, in ``tune.py --resume`` and a
    reproduction's rerun): its run runs again, the interrupt's reason gone, its own params kept,
    and the epochs it holds are not logged again when the trial reports them anew."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("owned"), tags={TRIAL_TAG: "aaaaa_00000"})
    client.log_param(run.info.run_id, "theta", "0.5")
    client.set_tag(run.info.run_id, FAILURE_TAG, "killed: the reproduction was interrupted")
    client.log_metric(run.info.run_id, "valid/auc", 0.6, step=1)
    client.set_terminated(run.info.run_id, status="KILLED")
    owner = RunOwner(uri, "owned", "s5", partial(_spec, added=True))
    trial = _trial("aaaaa_00000")

    owner.on_trial_start(0, [], trial)
    for epoch, auc in ((1, 0.61), (2, 0.7)):  # its checkpoint held epoch 0: epoch 1 is reported again
        owner.on_trial_result(0, [], trial, {"epoch": epoch, "valid/auc": auc})

    reopened = client.get_run(run.info.run_id)
    assert reopened.info.status == "RUNNING" and FAILURE_TAG not in reopened.data.tags
    assert reopened.data.tags[SEARCH_TAG] == "s5"
    assert reopened.data.params == {"theta": "0.5", "train.topk_every": "0"}  # its own value kept
    logged = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "valid/auc")]
    assert sorted(logged) == [(1, 0.6), (2, 0.7)]  # the epoch it lacked, and no epoch twice
    assert len(_runs(uri)) == 1


def test_the_recall_plot_is_drawn_only_for_a_result_with_recall(tmp_path):
    ranked = {"test/auc": 0.8, "test/recall@10": 0.1, "test/recall@20": 0.2, "best_epoch": 2}
    assert recall_plot(ranked, tmp_path / "ranked.png") and (tmp_path / "ranked.png").stat().st_size > 0
    assert not recall_plot({"test/auc": 0.8, "best_epoch": 2}, tmp_path / "unranked.png")
    assert not (tmp_path / "unranked.png").exists()
