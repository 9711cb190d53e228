"""The baselines on tiny random graphs: each model's equivalences from its paper, and the parts
they are built from (BPR's sampler, TransE, TransR, triple sets, PathSim). The shared contract
(shapes, score_all = forward, recommend) is tests/test_contract.py; a gradient on every
parameter is tests/test_model.py."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_data

from mikgnn.baselines.fm import FM
from mikgnn.baselines.kge import TransR, train_transe
from mikgnn.baselines.kgin import distance_correlation
from mikgnn.baselines.per import item_attribute_paths
from mikgnn.baselines.triple_sets import grow
from mikgnn.bpr import NegativeSampler
from mikgnn.config import ModelConfig, TrainConfig, for_model, train_for_model
from mikgnn.experiment import build, fit
from mikgnn.models import MF, build_model
from mikgnn.training import Rows, shuffled_batches, step_loss, train_epoch, training_rows


def _model(name: str, **overrides):
    cfg = replace(for_model(ModelConfig(), name), **{"dim": 8, "hops": 2, **overrides})
    return build_model(tiny_data(), cfg, seed=0).eval()


def test_the_bpr_sampler_never_returns_a_training_positive():
    data = tiny_data()
    train = Rows.from_numpy(data.splits["train"])
    sampler = NegativeSampler(train.user, train.item, train.label, data.n_items, seed=0)
    users = train.user[train.label == 1].repeat(20)
    negatives = sampler.sample(users)
    assert not bool(sampler.is_positive(users, negatives).any())
    positives = set(zip(train.user[train.label == 1].tolist(), train.item[train.label == 1].tolist()))
    assert not positives & set(zip(users.tolist(), negatives.tolist()))
    assert len(set(negatives.tolist())) > data.n_items // 2  # spread over the catalogue


def test_svd_without_biases_is_mf():
    svd = _model("svd")
    mf = MF(n_users=svd.user.num_embeddings, n_items=svd.n_items, dim=8)
    mf.load_state_dict({"user.weight": svd.user.weight, "item.weight": svd.item.weight})
    users = torch.arange(10)
    torch.testing.assert_close(svd.score_all(users), mf.score_all(users))  # biases start at 0
    with torch.no_grad():
        svd.item_bias.weight[3] = 2.0
    assert torch.allclose(svd.score_all(users)[:, 3], mf.score_all(users)[:, 3] + 2.0)


def test_fm_on_ids_alone_is_biased_mf():
    fm, svd = _model("fm"), _model("svd")
    with torch.no_grad():
        for a, b in ((fm.user_bias, svd.user_bias), (fm.item_bias, svd.item_bias)):
            a.weight.normal_()
            b.weight.copy_(a.weight)
    users = torch.arange(12)
    torch.testing.assert_close(fm.score_all(users), svd.score_all(users))


def test_fm_with_features_equals_its_pairwise_sum():
    """Rendle's Lemma 3.1: the O(kn) form equals Σ_a Σ_(b>a) <v_a, v_b> x_a x_b of Eq. (1)."""
    torch.manual_seed(0)
    features = torch.randn(5, 3)
    fm = FM(n_users=4, n_items=5, dim=6, item_features=features).eval()
    with torch.no_grad():
        for p in fm.parameters():
            p.normal_()
    for u, i in itertools.product(range(4), range(5)):
        v = torch.cat([fm.user.weight[u : u + 1], fm.item.weight[i : i + 1], fm.feature_factors])  # [2 + k, d]
        x = torch.cat([torch.ones(2), features[i]])  # [2 + k]
        w = torch.cat([fm.user_bias.weight[u], fm.item_bias.weight[i], fm.feature_weights])
        pairs = sum(v[a] @ v[b] * x[a] * x[b] for a in range(len(x)) for b in range(a + 1, len(x)))
        expected = fm.bias + w @ x + pairs
        got = fm(torch.tensor([u]), torch.tensor([i]))
        torch.testing.assert_close(got, expected.view(1), rtol=1e-4, atol=1e-4)


def test_transe_learns_the_triples_it_is_given():
    """On a KG where relation 0 maps entity k to k + 10, TransE ranks the true tail first."""
    head = np.arange(10)
    entity = train_transe(head, np.zeros(10, np.int64), head + 10, 20, 1, dim=8, seed=0, epochs=300)
    assert torch.allclose(entity.norm(dim=-1), torch.ones(20), atol=1e-5)
    r = (entity[10:] - entity[:10]).mean(0)
    distance = torch.cdist(entity[:10] + r, entity[10:])  # [10, 10]
    assert (distance.argmin(1) == torch.arange(10)).float().mean() >= 0.9


def test_transr_energy_is_zero_for_a_translation_in_the_relation_space():
    transr = TransR(2, 4, 3)
    h, t = torch.randn(1, 4), torch.randn(1, 4)
    with torch.no_grad():
        transr.relation.weight[1] = ((t - h) @ transr.projection[1]).squeeze(0)
    assert transr.energy(h, torch.tensor([1]), t).item() == pytest.approx(0.0, abs=1e-10)
    assert transr.energy(h, torch.tensor([1]), -t).item() > 0


def test_triple_sets_grow_hop_by_hop_from_the_seeds():
    head = np.array([0, 0, 1, 5, 6, 7])
    tail = np.array([5, 6, 7, 8, 8, 9])
    sets = grow([np.array([0]), np.array([1]), np.array([], np.int64)], head, np.arange(6), tail, 10, hops=3,
                size=4, seed=0)
    assert sets.head.shape == (3, 3, 4)
    assert set(sets.head[0, 0].tolist()) == {0} and set(sets.tail[0, 0].tolist()) <= {5, 6}
    assert set(sets.head[0, 1].tolist()) <= set(sets.tail[0, 0].tolist())  # hop 2 starts at hop 1's tails
    assert set(sets.tail[0, 1].tolist()) == {8}
    torch.testing.assert_close(sets.head[0, 2], sets.head[0, 1])  # 8 has no edge: the hop repeats
    assert set(sets.tail[1, 1].tolist()) == {9}
    for k in range(3):  # every kept triple is one of the KG's
        for h, r, t in zip(sets.head[0, k], sets.relation[0, k], sets.tail[0, k]):
            assert (head[r], tail[r]) == (h, t)


def test_ripplenet_with_uniform_attention_averages_the_ripple_tails():
    model = _model("ripplenet", hops=1)
    with torch.no_grad():
        model.relation.zero_()  # v^T R h = 0: p_i = 1/m (Eq. 4)
        model.transform.weight.copy_(torch.eye(8))
    users, items = torch.tensor([0, 1]), torch.tensor([3, 4])
    o = model.entity(model.ripple_tail[users][:, 0]).mean(1)  # Eq. (5)  [2, d]
    v = model.entity(items) + o
    torch.testing.assert_close(model(users, items), (o * v).sum(-1))


def test_ripplenet_projects_each_triple_by_its_own_relation_matrix():
    """R h and h^T R t, computed relation by relation, equal the per-triple products of
    Eq. (4) and (10), values and gradients."""
    model = _model("ripplenet").train()
    users, items = torch.tensor([0, 4, 0, 7]), torch.tensor([1, 2, 3, 1])
    h = model.entity(model.ripple_head[users])  # [B, h, m, d]
    t = model.entity(model.ripple_tail[users])
    r = model.relation[model.ripple_relation[users]]  # [B, h, m, d, d]
    torch.testing.assert_close(model.memories(users)[0], torch.einsum("bkmij,bkmj->bkmi", r, h))
    out = model.forward_train(users, items)
    kge = -model.kg_weight * torch.sigmoid(torch.einsum("bkmi,bkmij,bkmj->bkm", h, r, t)).mean()
    torch.testing.assert_close(out.extra, kge)
    model.zero_grad()
    (out.logits.sum() + out.extra).backward()
    fast = model.relation.grad.clone()
    model.zero_grad()
    rh = torch.einsum("bkmij,bkmj->bkmi", r, h)
    (model.respond(model.entity(items).unsqueeze(1), rh, t).sum() + kge).backward()
    torch.testing.assert_close(fast, model.relation.grad)


def test_cke_without_the_knowledge_is_matrix_factorisation():
    model = _model("cke")
    with torch.no_grad():
        model.entity.weight.zero_()
    users = torch.arange(5)
    torch.testing.assert_close(model.score_all(users), model.user(users) @ model.item.weight.T)


def test_kgat_attention_is_a_distribution_over_each_heads_edges():
    model = _model("kgat")
    weights = model.attention()
    total = torch.zeros(model.node.num_embeddings).index_add_(0, model.head, weights)
    heads = torch.unique(model.head)
    torch.testing.assert_close(total[heads], torch.ones(heads.numel()))
    assert bool((weights > 0).all())


def test_kgat_without_layers_is_its_cf_part_the_inner_product_of_embeddings():
    model = _model("kgat", hops=1)
    model.layers = torch.nn.ModuleList()
    users = torch.arange(6)
    e = model.node.weight
    torch.testing.assert_close(model.score_all(users), e[users + model.n_entities] @ e[: model.n_items].T)


def test_kgat_attention_is_fixed_for_an_epoch_and_refreshed_after_it():
    """As KGAT's code: π is recomputed once an epoch (after its last step), not every step;
    loading weights forgets the π of the old ones."""
    data = tiny_data()
    model_cfg = replace(for_model(ModelConfig(), "kgat"), dim=8, hops=2)
    exp = build(data, model_cfg, replace(train_for_model(TrainConfig(), "kgat"), lr=0.05, batch_size=64))
    model = exp.model
    rows = training_rows(exp.splits["train"], TrainConfig(loss="bpr"))
    first = model.epoch_attention().clone()
    batches = list(shuffled_batches(rows, 64, torch.Generator().manual_seed(0)))
    train_epoch(model, exp.optimizer, batches[:1], replace(TrainConfig(), loss="bpr", lr=0.05), negatives=exp.negatives)
    after = model.attention()  # π of the weights after the epoch
    assert not torch.allclose(after, first)
    torch.testing.assert_close(model.epoch_attention(), after)  # validation reads the new π
    loss = step_loss(model, batches[1], replace(TrainConfig(), loss="bpr"), negatives=exp.negatives)
    exp.optimizer.zero_grad()
    loss.backward()
    exp.optimizer.step()
    torch.testing.assert_close(model.epoch_attention(), after)  # a step inside an epoch keeps it
    assert not torch.allclose(model.attention(), after)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.node.weight.mul_(3.0)
    model.epoch_attention()
    model.load_state_dict(state)
    torch.testing.assert_close(model.epoch_attention(), model.attention())


def test_ckan_scores_a_batch_with_repeats_as_each_row_on_its_own():
    """Each distinct user and item of a batch is represented once, and W1 [e_h ‖ e_r] is split
    into its two halves: the same logits and gradients as Eq. (5-7, 12) row by row."""
    model = _model("ckan").train()
    users, items = torch.tensor([0, 3, 0, 5, 3, 0]), torch.tensor([2, 2, 7, 1, 7, 2])

    def per_row() -> torch.Tensor:
        sides = []
        for side, ids, first in (("user", users, model.entity(model.user_head[users][:, 0]).mean(1)),
                                 ("item", items, model.entity(items))):
            h = model.entity(getattr(model, f"{side}_head")[ids])  # [B, L, m, d]
            r = model.relation(getattr(model, f"{side}_relation")[ids])
            t = model.entity(getattr(model, f"{side}_tail")[ids])
            weights = torch.softmax(model.attention(torch.cat([h, r], -1)).squeeze(-1), dim=-1)  # [B, L, m]
            sides.append(torch.cat([first, *(weights.unsqueeze(-1) * t).sum(2).unbind(1)], -1))
        return (sides[0] * sides[1]).sum(-1)

    expected = per_row()
    logits = model.forward_train(users, items).logits
    torch.testing.assert_close(logits, expected)
    grads = []
    for value in (expected, logits):
        model.zero_grad()
        (value * torch.arange(1.0, 7.0)).sum().backward(retain_graph=True)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_ckan_user_and_item_vectors_are_independent_so_the_grid_is_one_product():
    model = _model("ckan")
    users, items = torch.arange(5), torch.arange(7)
    grid = model.represent_users(users) @ model.represent_items(items).T
    torch.testing.assert_close(model.score_all(users, items), grid)
    assert model.represent_users(users).shape == (5, 3 * 8)  # layers 0..2 concatenated (Eq. 9)


def test_kgin_distance_correlation_and_zero_layers_is_mf():
    a = torch.randn(50)
    assert distance_correlation(a, a).item() == pytest.approx(1.0, abs=1e-4)
    assert distance_correlation(a, 3 * a + 1).item() == pytest.approx(1.0, abs=1e-4)
    assert distance_correlation(a, torch.randn(50, generator=torch.Generator().manual_seed(3))).item() < 0.5
    model = _model("kgin")
    model.layers = 0
    users = torch.arange(6)
    torch.testing.assert_close(model.score_all(users), model.user(users) @ model.entity.weight[: model.n_items].T)


def test_per_chooses_the_relations_that_reach_the_most_items():
    data = tiny_data()
    paths = item_attribute_paths(data, limit=1)
    assert [r for r, _, _ in paths] == [0]  # relation 0 links every item to its genre
    model = _model("per")
    assert model.paths[0] == 0 and model.user_factors.shape[0] == len(model.paths)


def test_agcn_infers_the_attributes_of_items_that_have_none():
    data = tiny_data()
    cfg = replace(for_model(ModelConfig(), "agcn"), dim=8)
    train_cfg = replace(train_for_model(TrainConfig(), "agcn"), epochs=1, batch_size=32)
    exp = build(data, cfg, train_cfg)
    model = exp.model
    missing = torch.nonzero(~model.known).flatten()
    if missing.numel() == 0:  # tiny_data links every item: drop one item's attributes
        model.known[0] = False
        model.attributes[0] = 0
        missing = torch.tensor([0])
    known_before = model.attributes[model.known].clone()
    fit(exp, train_cfg)
    inferred = model.inferred[missing]
    assert bool(((inferred > 0) & (inferred < 1)).all())  # σ outputs, refreshed by training
    torch.testing.assert_close(model.attributes[model.known], known_before)


@pytest.mark.parametrize("name", ["svd", "fm", "cke", "ckan", "lightgcn"])
def test_a_small_dataset_is_learned(name):
    data = tiny_data()
    cfg = replace(for_model(ModelConfig(), name), dim=8, hops=1)
    train_cfg = replace(train_for_model(TrainConfig(), name), lr=2e-2, batch_size=32, epochs=25, patience=25)
    result = fit(build(data, cfg, train_cfg), train_cfg)
    assert result["valid/auc"] > 0.65 and result["test/auc"] > 0.65  # chance is 0.5
