"""Which interrupted reproduction cells continue, and from which checkpoint.

A cell trains in a Tune trial that checkpoints every epoch into its folder,
``<storage>/<reproduction>-<kind>/<trainable>_<trial id>_.../checkpoint_NNNNNN``. When a
reproduction is interrupted (Ctrl-C, SIGTERM, a driver or machine lost), its cell runs end
KILLED, or stay RUNNING when the driver died without a word. A rerun (a new reproduction, so a
new Tune experiment) then continues each such cell from its trial's last complete checkpoint,
in the same MLflow run: the run's tags name the reproduction and the trial, which is all it
takes to find the folder. The epochs the run already holds are not logged twice
(``run_owner.RunOwner``).

A FAILED cell is trained again from its first epoch, in a new run: what made it fail (a
diverged loss, a worker out of memory) may be in its state. A RUNNING cell without a
checkpoint is ended KILLED, with the reason, and trained again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from mikgnn.distributed.tracking import SEARCH_TAG, TRIAL_TAG, terminate_running
from mikgnn.distributed.train_loop import STATE_JSON
from mikgnn.model_store import STATE_FILE
from mikgnn.storage import Location, resolve

ORPHAN_REASON = "its reproduction ended without closing it (the driver was killed) and it left no checkpoint"


@dataclass(frozen=True)
class Resume:
    run_id: str
    checkpoint: str  # URI (or local path) of the trial's last complete checkpoint
    epoch: int  # the last epoch the checkpoint holds
    history: tuple[dict, ...] = ()  # its epochs' metrics: the run logs those it lacks (a checkpoint is
    # written before the driver hears of its epoch, so an interrupt can fall between the two)


def last_checkpoint(storage_path: str, kind: str, search: str,
                    trial_id: str) -> tuple[Location, int, tuple[dict, ...]] | None:
    """The newest complete checkpoint of trial ``trial_id`` of reproduction ``search``, the
    last epoch it holds, and the metrics of its epochs."""
    experiment = resolve(storage_path) / f"{search}-{kind}"
    trials = [t for t in experiment.children() if f"_{trial_id}_" in t.name]
    for trial in trials:
        checkpoints = [c for c in trial.children() if c.name.startswith("checkpoint_")]
        for checkpoint in reversed(checkpoints):  # a copy cut short by the interruption is skipped
            if STATE_FILE not in {f.name for f in checkpoint.files()}:
                continue
            try:
                state = json.loads((checkpoint / STATE_JSON).read_text())
                return checkpoint, int(state["epoch"]), tuple(state.get("history", ()))
            except (OSError, ValueError, KeyError):
                continue
    return None


def resumable(client: MlflowClient, newest: dict[str, tuple[str, object]], storage_path: str,
              reproduction: str) -> dict[str, Resume]:
    """Cell identity -> where it continues. ``newest``: identity -> (kind, the cell's newest run),
    for the cells to train that have no finished run. Interrupted runs that cannot continue are
    ended KILLED with the reason (``reproduction`` names the one that trains them again)."""
    out = {}
    for identity, (kind, run) in newest.items():
        if run.info.status not in ("KILLED", "RUNNING"):
            continue
        tags = run.data.tags
        found = None
        if SEARCH_TAG in tags and TRIAL_TAG in tags:
            found = last_checkpoint(storage_path, kind, tags[SEARCH_TAG], tags[TRIAL_TAG])
        if found is not None:
            out[identity] = Resume(run.info.run_id, found[0].uri, found[1], found[2])
        else:  # a KILLED run keeps its reason; a RUNNING one is ended with this one
            terminate_running(client, [run], "KILLED", f"{ORPHAN_REASON}; {reproduction} trains it again")
    return out
