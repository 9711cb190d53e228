"""The model on small random graphs: shapes of every variant, the equivalences that must hold,
gradients, and that a small dataset is learned."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_data

from mikgnn.config import (
    MODELS,
    VARIANTS,
    ModelConfig,
    ParallelConfig,
    TrainConfig,
    apply_variant,
    for_model,
    train_for_model,
)
from mikgnn.experiment import build, fit
from mikgnn.models import build_model
from mikgnn.models.score_graph import graph_cost, score_graph
from mikgnn.models.score_grid import score_grid
from mikgnn.training import Rows, diagnostics, predict, step_loss, training_rows

CONFIGS = [apply_variant(ModelConfig(dim=8, n_neighbours=4, hops=h), v) for v in VARIANTS for h in (1, 2)]
CONFIGS += [for_model(ModelConfig(dim=8, n_neighbours=4, hops=h), "kgcn", a)
            for a in ("sum", "concat", "neighbor") for h in (1, 2)]
CONFIGS += [apply_variant(ModelConfig(dim=8, n_neighbours=3, hops=3), v) for v in ("mi-kgnn", "w-r", "w-l", "fmk")]
CONFIGS += [replace(ModelConfig(dim=8, n_neighbours=3, hops=2), logits="dot", neighbour_vector="sum"),
            for_model(ModelConfig(dim=8), "mf")]
CONFIGS += [apply_variant(ModelConfig(dim=8, n_neighbours=3, hops=h, transform="learned"), v)
            for v, h in (("mi-kgnn", 1), ("mi-kgnn", 2), ("mi-kgnn", 3), ("fmk", 2), ("w/o-att", 1))]
CONFIGS += [replace(for_model(ModelConfig(dim=8, n_neighbours=4, hops=h), "kgcn", a), transform="identity")
            for a in ("sum", "neighbor") for h in (1, 2)]


def _id(cfg: ModelConfig) -> str:
    flags = "".join(k for k, on in (("r", cfg.adjusted_field), ("a", cfg.pruned), ("l", cfg.layer_by_layer)) if on)
    return f"{cfg.model}-{cfg.attention}-{cfg.aggregator}-{cfg.transform}-h{cfg.hops}-t{cfg.theta}-{flags}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=[_id(c) for c in CONFIGS])
def test_shapes_and_grid_agree_with_pairs(cfg):
    data = tiny_data()
    model = build_model(data, cfg, seed=0)
    users, items = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, 6, 7, 8, 9])
    out = model.forward_train(users, items)
    assert out.logits.shape == model(users, items).shape == (5,)
    grid = model.score_all(torch.arange(7))
    assert grid.shape == (7, data.n_items)
    pairs = model(torch.arange(7).repeat_interleave(data.n_items), torch.arange(data.n_items).repeat(7))
    torch.testing.assert_close(grid, pairs.view(7, -1), rtol=1e-5, atol=1e-6)
    if cfg.model != "mf":  # both of score_all's ways, whichever it picks here
        ways = [score_grid] + ([score_graph] if graph_cost(model, model.all_items()) != (0, 0) else [])
        for way in ways:
            torch.testing.assert_close(way(model, torch.arange(7), model.all_items()), pairs.view(7, -1),
                                       rtol=1e-5, atol=1e-6)
    if cfg.model != "mf":
        field = [1] + ([cfg.n_neighbours] * cfg.hops if cfg.adjusted_field else
                       [cfg.n_neighbours**k for k in range(1, cfg.hops + 1)])
        assert [e.shape[1] for e in out.field.entities] == field
        torch.testing.assert_close(out.field.first_weights[0].sum(-1), torch.ones(5, 1))


def _attention_inputs(seed=0, b=3, m=2, f=4, d=8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, d, generator=g), torch.randn(b, m, d, generator=g),
            torch.randn(b, m, f, d, generator=g), torch.randn(b, m, f, d, generator=g))


def _model(**kw):
    return build_model(tiny_data(), ModelConfig(dim=8, n_neighbours=4, **kw), seed=0)


def test_theta_one_ignores_the_neighbourhood_attention():
    user, center, nb, rel = _attention_inputs()
    model = _model(theta=1.0)
    torch.testing.assert_close(model.attention(user, center, nb, rel), model.attention(user, 5 * center, nb, rel))
    assert not torch.allclose(model.attention(user, center, nb, rel), model.attention(-user, center, nb, rel))


def test_theta_zero_ignores_the_user():
    user, center, nb, rel = _attention_inputs()
    model = _model(theta=0.0)
    torch.testing.assert_close(model.attention(user, center, nb, rel), model.attention(-3 * user, center, nb, rel))
    assert not torch.allclose(model.attention(user, center, nb, rel), model.attention(user, -center, nb, rel))


def test_dual_attention_is_the_theta_mix():
    user, center, nb, rel = _attention_inputs()
    a1, a0 = _model(theta=1.0).attention(user, center, nb, rel), _model(theta=0.0).attention(user, center, nb, rel)
    torch.testing.assert_close(_model(theta=-0.35).attention(user, center, nb, rel), -0.35 * a1 + 1.35 * a0)


def test_without_attention_weights_are_uniform():
    user, center, nb, rel = _attention_inputs()
    torch.testing.assert_close(_model(attention="uniform").attention(user, center, nb, rel),
                               torch.full((3, 2, 4), 0.25))


@pytest.mark.parametrize("flag", ["adjusted_field", "layer_by_layer"])
def test_fmk_r_and_l_coincide_with_the_full_scheme_at_one_hop(flag):
    data = tiny_data()
    base = ModelConfig(dim=8, n_neighbours=4, hops=1)
    full, fast = build_model(data, base, 0), build_model(data, replace(base, **{flag: True}), 0)
    users, items = torch.arange(10), torch.arange(10, 20)
    torch.testing.assert_close(full(users, items), fast(users, items))
    deep = ModelConfig(dim=8, n_neighbours=4, hops=2)
    assert not torch.allclose(build_model(data, deep, 0)(users, items),
                              build_model(data, replace(deep, **{flag: True}), 0)(users, items))


@pytest.mark.parametrize("hops", [1, 2])
def test_identity_transform_is_eq16_with_w1_and_w2_the_identity(hops):
    data = tiny_data()
    cfg = ModelConfig(dim=8, n_neighbours=4, hops=hops, transform="identity")
    fixed = build_model(data, cfg, seed=0)
    learned = build_model(data, replace(cfg, transform="learned"), seed=0)
    assert {n for n, _ in fixed.named_parameters()} == {"user.weight", "entity.weight", "relation.weight"}
    users, items = torch.arange(10), torch.arange(10, 20)
    assert not torch.allclose(fixed(users, items), learned(users, items))
    with torch.no_grad():
        for layer in learned.layers:
            layer.w1.weight.copy_(torch.eye(8))
            layer.w2.weight.copy_(torch.eye(8))
            layer.w1.bias.zero_()
    torch.testing.assert_close(fixed(users, items), learned(users, items))
    torch.testing.assert_close(fixed.score_all(users),
                               learned.score_all(users))


def test_defaults_identity_for_mikgnn_and_learned_for_the_kgcn_baselines():
    assert ModelConfig().transform == "identity"
    assert for_model(ModelConfig(), "kgcn").transform == for_model(ModelConfig(), "kgcn-ls").transform == "learned"
    kgcn = build_model(tiny_data(), for_model(ModelConfig(dim=8, n_neighbours=4), "kgcn"), seed=0)
    assert {"layers.0.w1.weight", "layers.0.w1.bias"} <= {n for n, _ in kgcn.named_parameters()}


@pytest.mark.parametrize("model_name,transform", [(m, None) for m in MODELS] + [("mikgnn", "learned")])
def test_gradient_reaches_every_parameter(model_name, transform):
    """One training step's whole loss (the model's own loss and extra terms, its default L2 and
    λ raised so that it shows) reaches every parameter."""
    data = tiny_data()
    cfg = for_model(ModelConfig(dim=8, n_neighbours=4, hops=2), model_name)
    cfg = replace(cfg, transform=transform) if transform else cfg
    train_cfg = replace(train_for_model(TrainConfig(), model_name), l2=1e-3,
                        ls_weight=0.5 if model_name == "kgcn-ls" else 0.0)
    exp = build(data, cfg, train_cfg)
    rows = training_rows(exp.splits["train"], train_cfg)
    loss = step_loss(exp.model, rows, train_cfg, exp.ls_table, exp.negatives, l2_in_optimizer=False)
    loss.backward()
    for name, param in exp.model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("model_name", ["mikgnn", "kgcn-ls"])
def test_a_small_dataset_is_learned(model_name):
    data = tiny_data()
    cfg = for_model(ModelConfig(dim=8, n_neighbours=4, hops=1), model_name)
    train_cfg = TrainConfig(lr=2e-2, batch_size=32, l2=1e-6, epochs=25, patience=25, protocol="full",
                            ls_weight=0.1 if model_name == "kgcn-ls" else 0.0)
    result = fit(build(data, cfg, train_cfg), train_cfg)
    assert result["test/auc"] > 0.7  # chance is 0.5
    assert result["valid/auc"] > 0.7


def test_topk_every_changes_what_validation_logs_not_what_is_trained():
    data = tiny_data()
    cfg = ModelConfig(dim=8, n_neighbours=4, hops=2)
    every = TrainConfig(lr=2e-2, batch_size=32, l2=1e-6, epochs=8, patience=8, protocol="full")
    results = {k: fit(build(data, cfg, replace(every, topk_every=k)), replace(every, topk_every=k))
               for k in (1, 3, 0)}
    logged = {k: [e["epoch"] for e in r["history"] if "valid/recall@20" in e] for k, r in results.items()}
    assert logged == {1: list(range(1, 9)), 3: [3, 6], 0: []}
    for k in (3, 0):  # the same training, early stopping and test; the best epoch's top-K still reported
        assert results[k]["best_epoch"] == results[1]["best_epoch"]
        for key in ("valid/auc", "test/auc", "test/recall@20", "valid/recall@20", "valid/ndcg@10"):
            assert results[k][key] == pytest.approx(results[1][key], abs=1e-9), (k, key)


@pytest.mark.parametrize("kwargs,message", [
    (dict(theta=1.5), "theta must lie in"), (dict(theta=-1.01), "theta must lie in"),
    (dict(n_neighbours=0), "n .* must be >= 1"), (dict(hops=0), "h .* must be >= 1"),
    (dict(attention="nope"), "unknown attention"), (dict(model="gcn"), "unknown model"),
    (dict(transform="random"), "unknown transform 'random'"),
    (dict(aggregator="concat"), "concat aggregator .* has no identity transform"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant 'w-z'"):
        apply_variant(ModelConfig(), "w-z")


@pytest.mark.parametrize("kwargs,message", [
    (dict(select_metric="recall@7"), "unknown select_metric 'recall@7'"),
    (dict(l2_mode="some"), "unknown l2_mode"),
    (dict(topk_every=-1), "topk_every must be >= 0"),
    (dict(topk_every=0, select_metric="recall@20"), "needs topk_every 1, not 0"),
])
def test_bad_training_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_bad_parallel_configuration():
    with pytest.raises(ValueError, match="sync_every must be >= 1"):
        ParallelConfig(sync_every=0)


def test_the_parallel_summary_says_how_the_workers_share_a_step():
    assert ParallelConfig().summary(2, 128, gpu=False) == (
        "data parallel: 2 workers, DDP over gloo, gradients averaged every step; 64 rows a worker a step "
        "(global batch 128)")
    assert ParallelConfig(sync_every=16, batch_per_worker=True).summary(4, 1024, gpu=True) == (
        "data parallel: 4 workers, local SGD over NCCL, parameters averaged every 16 steps; 1024 rows a worker "
        "a step (global batch 4096)")
    assert ParallelConfig().summary(1, 128, gpu=False) == "one Ray Train worker, no data parallelism; batch 128"


def test_diagnostics_separate_items_with_distinct_neighbours():
    data = tiny_data()
    rows = Rows.from_numpy(data.splits["train"])
    uniform = diagnostics(_model(attention="uniform"), rows)
    assert uniform["attention_entropy"] == pytest.approx(1.0) and uniform["attention_spread"] == pytest.approx(0.0)
    sharp = _model(pruned=True, logits="dot", logit_scale=1e4, init_std=1.0)
    d = diagnostics(sharp, rows)
    keys = [{(int(e), int(r)) for e, r in zip(sharp.adj_entity[i], sharp.adj_relation[i])} for i in rows.item]
    distinct = np.array([len(k) > 1 for k in keys])
    assert 0 < distinct.mean() < 1
    assert d["attention_distinct_share"] == pytest.approx(distinct.mean())
    # repeated neighbours get equal weights: only items with distinct ones can be non-uniform
    assert d["attention_entropy_distinct"] < d["attention_entropy"] < 1.0


def test_predict_keeps_no_call_s_temporaries_alive(monkeypatch):
    """A model's output may be a view of its call's temporaries (MI-KGNN's logits are): kept in
    a list, every call's [pairs, nodes, d] tensors stayed alive until the end, 7.7 GB for
    movie-scale validation. predict copies each call's scores out, so at most the current
    call's temporaries live."""
    import weakref

    data = tiny_data()
    model = build_model(data, ModelConfig(dim=8, n_neighbours=3, hops=1), seed=0)
    monkeypatch.setattr(model, "pairs_per_call", lambda: 5)
    temporaries, alive = [], []

    def forward(users, items):
        big = torch.randn(len(users), 64)  # [B, 64]: a call's temporary
        temporaries.append(weakref.ref(big))
        alive.append(sum(ref() is not None for ref in temporaries))
        return big[:, 0]  # [B]: a view of it

    monkeypatch.setattr(model, "forward", forward)
    rows = Rows.from_numpy({k: v[:50] for k, v in data.splits["valid"].items()})
    logits = predict(model, rows)
    assert logits.shape == (50,) and len(temporaries) == 10
    assert max(alive) <= 2, alive  # the old list of views: 1, 2, ..., 10


def test_evaluation_calls_score_few_pairs_at_a_deep_field_and_agree_with_one_call(monkeypatch):
    """predict and diagnostics score at most ``pairs_per_call`` pairs a call (a 4-hop music field
    at 65,536 pairs a call held 8 GB a process): the chunks give the one call's logits."""
    import mikgnn.models.mikgnn as mikgnn_module

    data = tiny_data()
    model = build_model(data, ModelConfig(dim=8, n_neighbours=3, hops=3), seed=0)
    assert model.pairs_per_call() == mikgnn_module.PAIR_BYTES // (8 * 4 * (1 + 3 + 9 + 27) * 8)
    shallow = build_model(data, ModelConfig(dim=8, n_neighbours=3, hops=1), seed=0)
    assert model.pairs_per_call() < shallow.pairs_per_call() <= 65_536
    monkeypatch.setattr(mikgnn_module, "PAIR_BYTES", 8 * 4 * 40 * 8 * 7)  # 7 pairs a call
    assert model.pairs_per_call() == 7
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda u, i: calls.append(len(u)) or forward(u, i))
    rows = Rows.from_numpy({k: v[:50] for k, v in data.splits["valid"].items()})
    with torch.no_grad():
        whole = forward(rows.user, rows.item)
    torch.testing.assert_close(torch.from_numpy(predict(model, rows)), whole)
    assert max(calls) == 7 and sum(calls) == 50
