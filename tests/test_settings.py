"""Table 1 < variant < config file < flag, resolved in the library (``mikgnn.settings``)."""

from __future__ import annotations

import pytest

from mikgnn.settings import RUN_SECTIONS, ConfigError, load_config_file, parse_overrides, resolve_settings


def test_each_layer_overrides_the_one_before_and_says_so(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {dim: 32, n_neighbours: 4}\ntrain: {lr: 0.001, ks: [5, 10]}\nparallel: {sync_every: 4}\n")
    s = resolve_settings("music", variant="w-r", config_file=path,
                         flags={"model": {"n_neighbours": 2}, "train": {"epochs": 3}})
    assert (s.model.dim, s.model.n_neighbours, s.model.hops, s.model.adjusted_field) == (32, 2, 1, True)
    assert (s.train.lr, s.train.ks, s.train.epochs, s.train.batch_size) == (0.001, (5, 10), 3, 128)
    assert s.parallel.sync_every == 4
    assert s.origin["model.hops"] == "table1" and s.origin["model.adjusted_field"] == "variant"
    assert s.origin["model.dim"] == "config" and s.origin["model.n_neighbours"] == "flag"
    assert s.origin["train.batch_size"] == "table1" and s.origin["train.epochs"] == "flag"
    assert "model.n_neighbours = 2  (flag)" in s.describe().splitlines()


def test_the_baselines_take_their_own_settings_and_table1_beta():
    s = resolve_settings("movie", model="kgcn-ls", kgcn_aggregator="concat")
    assert (s.model.attention, s.model.aggregator, s.model.transform) == ("relation", "concat", "learned")
    assert s.train.ls_weight == 1.0 and s.origin["train.ls_weight"] == "table1"
    assert s.origin["model.attention"] == "model"
    assert resolve_settings("movie", model="kgcn").train.ls_weight == 0.0


def test_a_flag_cannot_silently_undo_the_variant():
    with pytest.raises(ConfigError, match=r"sets model.theta = 0.5, but --variant w/o-neig-att fixes theta = 1.0"):
        resolve_settings("music", variant="w/o-neig-att", flags={"model": {"theta": 0.5}})
    same = resolve_settings("music", variant="w/o-neig-att", flags={"model": {"theta": 1.0}})
    assert same.model.theta == 1.0


def test_a_variant_of_mi_kgnn_is_refused_for_another_model():
    with pytest.raises(ConfigError, match="--variant fmk is a variant of MI-KGNN.*--model kgcn has none"):
        resolve_settings("music", model="kgcn", variant="fmk")


def test_checks_that_need_two_keys_see_both_layers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {aggregator: concat}\n")
    s = resolve_settings("music", config_file=path, flags={"model": {"transform": "learned"}})
    assert (s.model.aggregator, s.model.transform) == ("concat", "learned")
    with pytest.raises(ConfigError, match=r"c\.yaml: the concat aggregator maps 2d to d features"):
        resolve_settings("music", config_file=path)


@pytest.mark.parametrize("text,message", [
    ("model: {dimm: 8}", r"unknown key model.dimm: model takes \[.*'dim'"),
    ("optimiser: {lr: 1}", r"unknown section 'optimiser'"),
    ("train: {seed: 3}", r"train.seed is chosen with --seed"),
    ("model: {model: kgcn}", r"model.model is chosen with --model"),
    ("model: [1, 2]", r"section 'model' must be a mapping"),
    ("model: {dim: [unclosed", r"not valid YAML"),
    ("model: {dim: 8.5}", r"model.dim = 8.5: expected int"),
    ("train: {l2_relations: 0}", r"train.l2_relations = 0: expected bool"),
    ("search: {scheduler: fifo}", r"unknown section 'search'"),  # train.py takes no search section
])
def test_a_bad_config_file_names_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config_file(path, RUN_SECTIONS)
    assert str(path) in str(info.value)


def test_a_bad_value_is_reported_with_its_layer(tmp_path):
    with pytest.raises(ConfigError, match="the flags: theta must lie in"):
        resolve_settings("music", flags={"model": {"theta": 3.0}})
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config_file(tmp_path / "absent.yaml")


def test_a_search_has_its_own_defaults_below_the_config_file_and_the_flags(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
    import tune

    def settings(*argv):
        return tune.settings_from_args(tune.build_parser().parse_args(["--dataset", "music", *argv]), "music")

    s = settings()
    assert (s.train.epochs, s.train.protocol, s.train.eval_users) == (100, "sampled", 500)
    assert s.origin["train.protocol"] == "job" and s.train.lr == 5e-4  # Table 1's lr, searched on top
    assert "train.epochs" not in s.origin  # the default budget of every run: trials stop once converged
    path = tmp_path / "fixed.yaml"
    path.write_text("train: {epochs: 7, patience: 2}\nmodel: {dim: 8}\n")
    s = settings("--config", str(path))
    assert (s.train.epochs, s.train.patience, s.model.dim, s.origin["train.epochs"]) == (7, 2, 8, "config")
    s = settings("--config", str(path), "--epochs", "3", "--set", "protocol=full")
    assert (s.train.epochs, s.train.protocol, s.origin["train.epochs"]) == (3, "full", "flag")


def test_set_takes_every_key_with_its_type_and_section():
    got = parse_overrides(["dim=32", "train.lr=0.001", "ks=[2, 10]", "init_std=null", "batch_per_worker=true",
                           "cpus_per_worker=2", "scheduler=fifo"])
    assert got == {"model": {"dim": 32, "init_std": None}, "train": {"lr": 0.001, "ks": (2, 10)},
                   "parallel": {"batch_per_worker": True, "cpus_per_worker": 2.0}, "search": {"scheduler": "fifo"}}
    s = resolve_settings("music", model="kgcn", flags=parse_overrides(["aggregator=neighbor", "l2=1e-6"]))
    assert (s.model.aggregator, s.model.transform, s.train.l2) == ("neighbor", "learned", 1e-6)
    assert s.origin["model.aggregator"] == "flag"


@pytest.mark.parametrize("pair,message", [
    ("dim", r"expected KEY=VALUE"),
    ("dim=abc", r"--set 'dim=abc': model.dim = 'abc': expected int"),
    ("dimm=3", r"unknown key 'dimm'; the keys: model: model, dim"),
    ("model.lr=1", r"unknown key model.lr"),
    ("seed=3", r"train.seed is chosen with --seed"),
    ("batch_per_worker=1", r"parallel.batch_per_worker = 1: expected bool"),
    ("scheduler=fifo", r"unknown key 'scheduler'"),  # not a key of a one-process run
])
def test_a_bad_set_names_the_pair(pair, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides([pair], RUN_SECTIONS)
