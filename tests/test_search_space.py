"""Search-space files, their loader, and the resource plan that keeps a default run from hanging."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mikgnn.config import MODELS, ModelConfig, TrainConfig, for_model, table1, train_for_model
from mikgnn.search_space import (
    FIELD_MODELS,
    SearchSpaceError,
    apply_params,
    field_label,
    fit_field,
    load_space,
    start_point,
)

SPACES = sorted(p for p in (Path(__file__).resolve().parents[1] / "tune_spaces").glob("*.yaml")
                if not p.stem.startswith("model-"))


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_spaces_hold_the_paper_sweeps_and_table1(path):
    """Each dataset's space holds Table 8 (n at h = 1), Table 9 (h = 1..4 at Table 1's n) and
    Table 1's own point, which a search evaluates first."""
    t = table1(path.stem)
    space = load_space(path)
    fields = {d.name: d for d in space.dimensions}["field"].values
    table8 = {field_label(n, 1) for n in (2, 4, 8, 16, 32)}
    table9 = {field_label(t.model.n_neighbours, h) for h in (1, 2, 3, 4)}
    assert set(fields) == table8 | table9
    point = start_point(space, t.model, t.train)
    assert point is not None and point["field"] == field_label(t.model.n_neighbours, 1)
    model, train = apply_params(t.model, t.train, point)
    assert (model, train) == (t.model, t.train)


def test_a_joint_field_sets_n_and_h():
    model, _ = apply_params(ModelConfig(), TrainConfig(), {"field": "16x3"})
    assert (model.n_neighbours, model.hops) == (16, 3)


def test_a_field_beyond_the_cap_is_trained_with_the_adjusted_field_not_skipped():
    model = ModelConfig(n_neighbours=16, hops=4)
    assert fit_field(model, 4096).adjusted_field  # 65,536 entities: FMK r, n per hop
    assert fit_field(ModelConfig(n_neighbours=8, hops=4), 4096) == ModelConfig(n_neighbours=8, hops=4)
    assert fit_field(model, None) == model


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
    ("n: {type: choice, values: []}", "'n': 'choice' needs a non-empty list 'values'"),
    ("lambda: {type: loguniform, low: 1.0e-8, high: .inf}", "'lambda': 'high' = inf is not a number >= 0 \\(finite\\)"),
    ("field: {type: choice, values: [[8, 1], [8]]}", "'field': values \\[\\[8\\]\\] are not a pair"),
    ("field: {type: choice, values: [[8, 1], [8, 1]]}", "'field': 'values' repeats a value"),
    ("field: {type: choice, values: [[8, 1]]}\nh: {type: choice, values: [1]}", "give either it or 'n'/'h'"),
    ("lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2, vaules: 3}", "unknown key\\(s\\) \\['vaules'\\]"),
    ("n: {type: choice, values: [1, 2], low: 1}", "unknown key\\(s\\) \\['low'\\] for type 'choice'"),
    ("n: {type: choice, values: [true, 2]}", "'n': values \\[True\\] are not an integer >= 1"),
    ("field: {type: choice, values: [[true, 1]]}", "'field': values \\[\\[True, 1\\]\\] are not a pair"),
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
    from mikgnn.distributed.cluster import plan_concurrency

    # one worker: the trial process itself trains (1 CPU); one CPU stays free for Ray Data
    assert plan_concurrency({"CPU": 4}, workers=1, cpus_per_worker=1, gpus_per_worker=0) == 3
    # two workers: a TorchTrainer, 2 CPUs plus its trial driver's 0.25
    assert plan_concurrency({"CPU": 4}, workers=2, cpus_per_worker=1, gpus_per_worker=0) == 1
    assert plan_concurrency({"CPU": 5.5}, workers=2, cpus_per_worker=1, gpus_per_worker=0) == 2
    assert plan_concurrency({"CPU": 64, "GPU": 4}, workers=1, cpus_per_worker=1, gpus_per_worker=1) == 4
    with pytest.raises(ValueError, match="kept free for Ray Data"):
        plan_concurrency({"CPU": 4}, workers=4, cpus_per_worker=1, gpus_per_worker=0)
    with pytest.raises(ValueError, match="needs 2 GPUs"):
        plan_concurrency({"CPU": 16, "GPU": 1}, workers=2, cpus_per_worker=1, gpus_per_worker=1)


def test_a_search_starts_from_table1_when_the_space_holds_it(tmp_path):
    t = table1("music")
    music = load_space(Path(__file__).resolve().parents[1] / "tune_spaces" / "music.yaml")
    assert start_point(music, t.model, t.train) == {"theta": 0.9, "field": "8x1", "lambda": 9.1e-5, "lr": 5e-4}
    path = tmp_path / "space.yaml"
    path.write_text("n: {type: choice, values: [2, 4]}\nlr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n")
    assert start_point(load_space(path), t.model, t.train) is None  # n = 8 is not a choice
    path.write_text("n: {type: choice, values: [4, 8]}\nlr: {type: loguniform, low: 1.0e-3, high: 1.0e-2}\n")
    assert start_point(load_space(path), t.model, t.train) is None  # lr = 5e-4 lies below
    path.write_text("n: {type: choice, values: [4, 8]}\n")
    assert start_point(load_space(path), t.model, t.train) == {"n": 8}


def test_a_grid_dimension_is_a_sweep_of_every_value(tmp_path):
    from mikgnn.search_space import check_sampler

    path = tmp_path / "table8.yaml"
    path.write_text("field: {type: grid, values: [[2, 1], [4, 1], [8, 1], [16, 1], [32, 1]]}\n"
                    "lr: {type: choice, values: [0.0005, 0.001]}\n")
    space = load_space(path)
    assert space.grid_size == 5 and space.as_dict()["field"] == {"type": "grid", "values": ["2x1", "4x1", "8x1",
                                                                                          "16x1", "32x1"]}
    check_sampler(space, "random")
    with pytest.raises(SearchSpaceError, match="a 'grid' dimension is a sweep of every value"):
        check_sampler(space, "optuna")
    check_sampler(load_space(SPACES[0]), "optuna")  # the shipped spaces sample


def test_random_search_caps_its_own_concurrency(tmp_path):
    """Tune ignores max_concurrent_trials for random search; the generator itself must cap it,
    or a trial starts on every CPU, the one kept free for Ray Data included."""
    from mikgnn.config import SearchConfig
    from mikgnn.distributed.tuner import TuneJob, _search_alg
    from mikgnn.storage import resolve

    t = table1("music")
    job = TuneJob(processed=resolve(tmp_path), space=load_space(SPACES[0]), model=t.model, train=t.train,
                  search=SearchConfig(search="random", experiment="music", name="s"), tracking_uri="sqlite:///x.db",
                  storage_path=resolve(tmp_path), command="tune.py")
    assert _search_alg(job, 3).max_concurrent == 3


@pytest.mark.parametrize("model", [m for m in MODELS if m != "mikgnn"])
def test_every_baseline_has_its_own_space_holding_its_own_defaults(model):
    """tune.py --model NAME searches tune_spaces/model-NAME.yaml on every dataset; each of the
    model's own defaults is a point of it (the first a search evaluates), and the point changes
    nothing of those defaults."""
    from mikgnn.search_space import space_file

    folder = SPACES[0].parent
    for dataset in ("music", "movie1m", "my_folder"):
        path, generic = space_file(folder, dataset, model)
        assert path == folder / f"model-{model}.yaml" and not generic
        t = table1(dataset)
        cfg, train = for_model(t.model, model), train_for_model(t.train, model)
        point = start_point(load_space(path), cfg, train)
        assert point is not None, (model, dataset)
        assert apply_params(cfg, train, point) == (cfg, train)
    assert fit_field(replace(for_model(ModelConfig(), model), hops=3), 64).adjusted_field == (model in FIELD_MODELS)


def test_a_dataset_without_a_space_of_its_own_gets_the_generic_one(tmp_path):
    from mikgnn.search_space import space_file

    folder = SPACES[0].parent
    assert space_file(folder, "music") == (folder / "music.yaml", False)
    assert space_file(folder, "my_folder") == (folder / "default.yaml", True)
    space = load_space(folder / "default.yaml")
    t = table1("my_folder")  # a custom dataset starts from music's Table 1
    assert start_point(space, t.model, t.train) is not None


def test_a_number_written_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 reads 1e-4 as a string; a space takes it as --set does."""
    path = tmp_path / "space.yaml"
    path.write_text("lr: {type: loguniform, low: 1e-4, high: 1e-2}\ntheta: {type: choice, values: [1e-1, 0.5]}\n")
    lr, theta = load_space(path).dimensions
    assert (lr.low, lr.high) == (1e-4, 1e-2) and theta.values == (0.1, 0.5)
