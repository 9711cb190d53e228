"""The regularisers' values on hand-computed cases: label smoothness (KGNN-LS) and the L2 modes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import tiny_data

from mikgnn.config import ModelConfig, TrainConfig, for_model
from mikgnn.label_smoothness import InteractionTable, label_smoothness_loss
from mikgnn.models import build_model
from mikgnn.models.base import Field


def _table(pairs: list[tuple[int, int, int]], n_entities: int = 10) -> InteractionTable:
    users, entities, labels = (torch.tensor(c) for c in zip(*pairs))
    return InteractionTable(users, entities, labels, n_entities)


def test_one_hop_label_is_the_attention_weighted_sum_of_the_neighbours_labels():
    # user 0, item entity 0 with neighbours 1 (labelled 1), 2 (unknown: 0.5) and 3 (labelled 0)
    field = Field(entities=[torch.tensor([[0]]), torch.tensor([[1, 2, 3]])],
                  first_weights=[torch.tensor([[[0.5, 0.3, 0.2]]])])
    table = _table([(0, 1, 1), (0, 3, 0), (1, 2, 1)])  # user 1's label is not user 0's
    loss = label_smoothness_loss(field, torch.tensor([0]), torch.tensor([1]), table)
    predicted = 0.5 * 1 + 0.3 * 0.5 + 0.2 * 0
    assert loss.item() == pytest.approx(-math.log(predicted), rel=1e-6)
    negative = label_smoothness_loss(field, torch.tensor([0]), torch.tensor([0]), table)
    assert negative.item() == pytest.approx(-math.log(1 - predicted), rel=1e-6)


def test_the_item_itself_is_held_out_wherever_it_appears_in_its_field():
    field = Field(entities=[torch.tensor([[0]]), torch.tensor([[0, 1]])],
                  first_weights=[torch.tensor([[[0.5, 0.5]]])])
    table = _table([(0, 0, 1), (0, 1, 1)])  # the user's own label for the item is never an anchor
    loss = label_smoothness_loss(field, torch.tensor([0]), torch.tensor([1]), table)
    assert loss.item() == pytest.approx(-math.log(0.5 * 0.5 + 0.5 * 1), rel=1e-6)


def test_two_hops_keep_labelled_entities_and_propagate_the_unlabelled_ones():
    # hop 1: entities 1 (labelled 0) and 2 (unknown); hop 2: their children
    field = Field(entities=[torch.tensor([[0]]), torch.tensor([[1, 2]]), torch.tensor([[3, 4, 5, 6]])],
                  first_weights=[torch.tensor([[[0.6, 0.4]]]), torch.tensor([[[0.5, 0.5], [0.25, 0.75]]])])
    table = _table([(0, 1, 0), (0, 3, 1), (0, 5, 1), (0, 6, 0)])
    loss = label_smoothness_loss(field, torch.tensor([0]), torch.tensor([1]), table)
    entity2 = 0.25 * 1 + 0.75 * 0  # propagated from entities 5, 6
    predicted = 0.6 * 0 + 0.4 * entity2  # entity 1 keeps its own label 0
    assert loss.item() == pytest.approx(-math.log(predicted), rel=1e-6)


@pytest.fixture
def kgcn():
    return build_model(tiny_data(), for_model(ModelConfig(dim=8, n_neighbours=4, hops=2), "kgcn"), seed=0)


def _half_sq(tensors) -> float:
    return 0.5 * sum(float(t.detach().pow(2).sum()) for t in tensors)


def test_full_l2_is_half_the_squared_norm_of_every_table_and_weight(kgcn):
    from mikgnn.training import l2_penalty

    expected = _half_sq([kgcn.user.weight, kgcn.entity.weight, kgcn.relation.weight]
                        + [w for layer in kgcn.layers for w in layer.parameters()])
    assert l2_penalty(kgcn, None, TrainConfig(l2_mode="full")).item() == pytest.approx(expected, rel=1e-5)
    without = expected - _half_sq([kgcn.relation.weight])
    got = l2_penalty(kgcn, None, TrainConfig(l2_mode="full", l2_relations=False)).item()
    assert got == pytest.approx(without, rel=1e-5)


def test_batch_l2_counts_only_the_rows_the_batch_used(kgcn):
    from mikgnn.training import l2_penalty

    out = kgcn.forward_train(torch.tensor([0, 0]), torch.tensor([3, 3]))
    weights = [w for layer in kgcn.layers for w in layer.parameters()]
    expected = _half_sq(out.embedded + out.embedded_relations + weights)
    assert l2_penalty(kgcn, out, TrainConfig(l2_mode="batch")).item() == pytest.approx(expected, rel=1e-5)
    # each looked-up row counts once per use (KGCN's code); a row the batch did not use counts not
    unused = 1  # the batch looked up user 0 alone
    with torch.no_grad():
        kgcn.user.weight[unused] += 100.0
    again = kgcn.forward_train(torch.tensor([0, 0]), torch.tensor([3, 3]))
    assert l2_penalty(kgcn, again, TrainConfig(l2_mode="batch")).item() == pytest.approx(expected, rel=1e-5)


def test_w1w2_is_the_squared_norm_of_the_summed_transforms_of_eq_24():
    from mikgnn.training import l2_penalty

    cfg = replace(ModelConfig(dim=8, n_neighbours=4, hops=2), transform="learned")  # Eq. 16: W1 and W2
    model = build_model(tiny_data(), cfg, seed=0)
    expected = sum(float((layer.w1.weight + layer.w2.weight).detach().pow(2).sum()) for layer in model.layers)
    assert expected > 0
    assert l2_penalty(model, None, TrainConfig(l2_mode="w1w2")).item() == pytest.approx(expected, rel=1e-5)


def test_w1w2_is_zero_for_a_fixed_identity_transform():
    from mikgnn.training import l2_penalty

    model = build_model(tiny_data(), replace(ModelConfig(dim=8, n_neighbours=4), transform="identity"), seed=0)
    assert l2_penalty(model, None, TrainConfig(l2_mode="w1w2")).item() == 0.0
