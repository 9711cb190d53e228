"""A checkpoint holds tensors and plain data only: resume restores it exactly, and refuses one
with a planted object (which would run code when unpickled) without running it."""

from __future__ import annotations

import subprocess

import pytest
import ray.train
import torch
from conftest import tiny_data

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.distributed.train_loop import STATE_FILE, CheckpointError, _restore, _save, loop_config
from mikgnn.experiment import FitState, build


class _Resume:
    """The one thing ``_restore`` asks of its session: the checkpoint to resume from."""

    def __init__(self, folder):
        self.folder = folder

    def checkpoint(self):
        return ray.train.Checkpoint.from_directory(str(self.folder))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return subprocess.call, (["touch", str(self.marker)],)


CONFIG = loop_config("processed/tiny", ModelConfig(dim=8, n_neighbours=4), TrainConfig(epochs=2), 1.0)


def _experiment():
    return build(tiny_data(), ModelConfig(dim=8, n_neighbours=4), TrainConfig(epochs=2))


def test_resume_restores_the_saved_state(tmp_path):
    exp, generator = _experiment(), torch.Generator().manual_seed(3)
    state = FitState(epoch=2, best=0.75, best_epoch=1, waited=1,
                     best_state={k: v.clone() for k, v in exp.model.state_dict().items()},
                     history=[{"epoch": 1, "valid/auc": 0.75}, {"epoch": 2, "valid/auc": float("nan")}])
    _save(exp, state, generator, str(tmp_path), CONFIG)
    other, fresh = _experiment(), torch.Generator()
    restored = _restore(other, fresh, _Resume(tmp_path))
    assert (restored.epoch, restored.best, restored.best_epoch, restored.waited) == (2, 0.75, 1, 1)
    assert restored.history[0] == {"epoch": 1, "valid/auc": 0.75}
    assert torch.equal(fresh.get_state(), generator.get_state())
    for key, value in exp.model.state_dict().items():
        assert torch.equal(other.model.state_dict()[key], value) and torch.equal(restored.best_state[key], value)


def test_a_planted_object_is_refused_and_never_runs(tmp_path):
    exp = _experiment()
    _save(exp, FitState(epoch=1), torch.Generator(), str(tmp_path), CONFIG)
    marker = tmp_path / "ran"
    saved = torch.load(tmp_path / STATE_FILE, weights_only=True)
    saved["generator"] = _RunsCode(marker)
    torch.save(saved, tmp_path / STATE_FILE)
    with pytest.raises(CheckpointError, match="holds more than tensors and plain data, so it is not loaded"):
        _restore(_experiment(), torch.Generator(), _Resume(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("cut", [0, 10, 0.5], ids=["empty", "ten-bytes", "half"])
def test_a_truncated_state_is_called_corrupt_not_unsafe(tmp_path, cut):
    """A torn state.pt (a copy cut short, a full disk) is refused as truncated or corrupt, not
    with the refusal meant for a planted object."""
    from mikgnn.model_store import load_state

    torch.save({"model": {"w": torch.zeros(1000)}}, tmp_path / "state.pt")
    whole = (tmp_path / "state.pt").read_bytes()
    (tmp_path / "state.pt").write_bytes(whole[:int(len(whole) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(CheckpointError, match="is truncated or corrupt") as refused:
        load_state(tmp_path)
    assert "could run code" not in str(refused.value)
