"""Which interrupted reproduction cells continue from a checkpoint (``cell_resume.resumable``):
real MLflow runs in a sqlite store and checkpoint folders laid out as Tune writes them."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from mikgnn.distributed.cell_resume import ORPHAN_REASON, resumable
from mikgnn.distributed.tracking import FAILURE_TAG, SEARCH_TAG, TRIAL_TAG

SEARCH = "reproduce-movie-20261205-010203"


def _run(client: MlflowClient, exp: str, trial: str, status: str):
    run = client.create_run(exp, tags={SEARCH_TAG: SEARCH, TRIAL_TAG: trial})
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status)
    return client.get_run(run.info.run_id)


def _checkpoint(storage, trial: str, index: int, epoch: int | None) -> None:
    trial_folder = storage / f"{SEARCH}-accuracy" / f"run_cell_{trial}_0_cell=0_2026-12-05_01-02-03"
    folder = trial_folder / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(b"tensors")
    history = [{"epoch": e, "valid/auc": 0.5 + e / 100} for e in range(1, (epoch or 0) + 1)]
    (folder / "state.json").write_text(json.dumps({"epoch": epoch, "history": history}) if epoch is not None
                                       else '{"epo')


def test_interrupted_cells_continue_from_their_last_complete_checkpoint(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("reproduce-movie")
    storage = tmp_path / "ray"
    killed = _run(client, exp, "aaaaa_00000", "KILLED")
    _checkpoint(storage, "aaaaa_00000", 6, 7)
    orphan = _run(client, exp, "aaaaa_00001", "RUNNING")  # its driver was SIGKILLed
    _checkpoint(storage, "aaaaa_00001", 3, 4)
    _checkpoint(storage, "aaaaa_00001", 4, None)  # the copy the kill cut short
    failed = _run(client, exp, "aaaaa_00002", "FAILED")
    _checkpoint(storage, "aaaaa_00002", 2, 3)
    bare = _run(client, exp, "aaaaa_00003", "RUNNING")  # killed before its first checkpoint
    newest = {"killed": ("accuracy", killed), "orphan": ("accuracy", orphan), "failed": ("accuracy", failed),
              "bare": ("accuracy", bare)}

    found = resumable(client, newest, str(storage), "reproduce-movie-20261205-090000")

    assert set(found) == {"killed", "orphan"}  # a FAILED cell starts again: its state may be the cause
    assert (found["killed"].run_id, found["killed"].epoch) == (killed.info.run_id, 7)
    assert found["killed"].checkpoint.endswith("checkpoint_000006")
    assert [h["epoch"] for h in found["killed"].history] == list(range(1, 8))  # what the run may lack
    assert (found["orphan"].epoch, found["orphan"].checkpoint.endswith("checkpoint_000003")) == (4, True)
    ended = client.get_run(bare.info.run_id)
    assert ended.info.status == "KILLED" and ended.data.tags[FAILURE_TAG].startswith(ORPHAN_REASON)
    assert "reproduce-movie-20261205-090000 trains it again" in ended.data.tags[FAILURE_TAG]
    assert client.get_run(orphan.info.run_id).info.status == "RUNNING"  # the rerun re-opens it
    assert client.get_run(failed.info.run_id).info.status == "FAILED"
