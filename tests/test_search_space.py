"""Search-space files, their loader, and the resource plan that keeps a default run from hanging."""

from __future__ import annotations

from pathlib import Path

import pytest

from mikgnn.config import ModelConfig, TrainConfig, table1
from mikgnn.search_space import SearchSpaceError, apply_params, load_space, start_point

SPACES = sorted((Path(__file__).resolve().parents[1] / "tune_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_spaces_load(path):
    space = load_space(path)
    assert {d.name for d in space.dimensions} == {"theta", "n", "h", "lambda", "lr"}
    assert space.as_dict()["n"] == {"type": "choice", "values": [2, 4, 8, 16, 32]}


@pytest.mark.parametrize("text,message", [
    ("theta: {type: uniform, low: -2, high: 1}", "'theta': 'low' = -2 is not a number in \\[-1, 1\\]"),
    ("dim: {type: choice, values: [8]}", "'dim': unknown parameter"),
    ("lr: {type: loguniform, low: 0.1, high: 0.01}", "'lr': needs low < high"),
    ("lambda: {type: loguniform, low: 0, high: 0.01}", "loguniform needs low > 0"),
    ("n: {type: uniform, low: 1, high: 8}", "'n': an integer parameter takes type 'choice'"),
    ("h: {type: choice, values: [1, 0]}", "'h': values \\[0\\] are not an integer >= 1"),
    ("theta: {type: normal}", "'theta': needs 'type' one of"),
    ("theta: [unclosed", "not valid YAML"),
    ("", "expected a mapping"),
])
def test_bad_spaces(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError, match=message):
        load_space(path)
    assert str(path) in str(pytest.raises(SearchSpaceError, load_space, path).value)


def test_apply_params_keeps_the_rest_of_table1():
    model, train = apply_params(ModelConfig(dim=32), TrainConfig(batch_size=1024),
                                {"theta": -0.5, "n": 4, "h": 2, "lambda": 1e-6, "lr": 1e-3})
    assert (model.theta, model.n_neighbours, model.hops, model.dim) == (-0.5, 4, 2, 32)
    assert (train.l2, train.lr, train.batch_size) == (1e-6, 1e-3, 1024)


def test_concurrency_is_derived_from_the_cluster():
    from mikgnn.distributed.tuner import plan_concurrency

    assert plan_concurrency({"CPU": 4}, workers=1, cpus_per_worker=1, gpus_per_worker=0) == 2
    assert plan_concurrency({"CPU": 4}, workers=2, cpus_per_worker=1, gpus_per_worker=0) == 1
    assert plan_concurrency({"CPU": 64, "GPU": 4}, workers=1, cpus_per_worker=1, gpus_per_worker=1) == 4
    with pytest.raises(ValueError, match="kept free for Ray Data"):
        plan_concurrency({"CPU": 4}, workers=4, cpus_per_worker=1, gpus_per_worker=0)
    with pytest.raises(ValueError, match="needs 2 GPUs"):
        plan_concurrency({"CPU": 16, "GPU": 1}, workers=2, cpus_per_worker=1, gpus_per_worker=1)


def test_a_search_starts_from_table1_when_the_space_holds_it(tmp_path):
    t = table1("music")
    music = load_space(Path(__file__).resolve().parents[1] / "tune_spaces" / "music.yaml")
    assert start_point(music, t.model, t.train) == {"theta": 0.9, "n": 8, "h": 1, "lambda": 9.1e-5, "lr": 5e-4}
    path = tmp_path / "space.yaml"
    path.write_text("n: {type: choice, values: [2, 4]}\nlr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n")
    assert start_point(load_space(path), t.model, t.train) is None  # n = 8 is not a choice
    path.write_text("n: {type: choice, values: [4, 8]}\nlr: {type: loguniform, low: 1.0e-3, high: 1.0e-2}\n")
    assert start_point(load_space(path), t.model, t.train) is None  # lr = 5e-4 lies below
    path.write_text("n: {type: choice, values: [4, 8]}\n")
    assert start_point(load_space(path), t.model, t.train) == {"n": 8}
