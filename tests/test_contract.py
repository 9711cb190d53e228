"""Every model of ``MODELS`` honours the one ``Recommender`` contract (``mikgnn.models.base``)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_data

from mikgnn.config import MODELS, ModelConfig, for_model
from mikgnn.models import Recommender, build_model


@pytest.fixture(params=MODELS)
def model(request) -> Recommender:
    data = tiny_data()
    cfg = for_model(ModelConfig(dim=8, n_neighbours=4, hops=2), request.param)
    return build_model(data, cfg, seed=0).eval()


def test_forward_gives_one_logit_per_pair_and_equals_forward_train(model):
    users, items = torch.tensor([0, 3, 3, 9]), torch.tensor([1, 1, 29, 0])
    logits = model(users, items)
    assert logits.shape == (4,)
    out = model.forward_train(users, items)
    torch.testing.assert_close(out.logits, logits)
    assert out.embedded and all(t.requires_grad for t in out.embedded)


def test_score_all_is_forward_on_every_user_item_pair(model):
    users = torch.tensor([0, 5, 17])
    grid = model.score_all(users)  # [U, I]
    assert grid.shape == (3, model.n_items)
    pairs_u = users.repeat_interleave(model.n_items)
    pairs_i = model.all_items().repeat(3)
    torch.testing.assert_close(grid.reshape(-1), model(pairs_u, pairs_i), rtol=1e-5, atol=1e-5)
    some = torch.tensor([4, 2])
    torch.testing.assert_close(model.score_all(users, some), grid[:, some], rtol=1e-5, atol=1e-5)


def test_recommend_is_best_first_and_never_returns_an_excluded_item(model):
    users = torch.tensor([2, 7])
    seen = (torch.tensor([2, 2, 7]), torch.tensor([0, 1, 5]))
    items, logits = model.recommend(users, k=10, exclude=seen)
    assert items.shape == logits.shape == (2, 10)
    assert torch.all(logits[:, :-1] >= logits[:, 1:])
    assert not {0, 1} & set(items[0].tolist()) and 5 not in items[1].tolist()
    grid = model.score_all(users)
    torch.testing.assert_close(logits, torch.gather(grid, 1, items))
    unexcluded, _ = model.recommend(users, k=model.n_items)
    assert sorted(unexcluded[0].tolist()) == list(range(model.n_items))


@pytest.mark.parametrize("k", [0, 31])
def test_recommend_refuses_a_k_outside_the_item_count(model, k):
    with pytest.raises(ValueError, match=r"k must lie in \[1, 30\]"):
        model.recommend(torch.tensor([0]), k=k)


def test_the_l2_tensors_are_parameters_the_model_trains(model):
    params = {id(p) for p in model.parameters()}
    tensors = model.l2_tensors()
    assert tensors and all(id(t) in params for t in tensors)


def test_n_has_one_source_the_neighbour_tables_must_match_the_config():
    from mikgnn.models.mikgnn import MIKGNN

    data = tiny_data()
    model = build_model(data, ModelConfig(n_neighbours=4), seed=0)
    assert model.n == 4 == model.config.n_neighbours
    with pytest.raises(ValueError, match=r"do not hold n = 8 neighbours per entity"):
        MIKGNN(n_users=data.n_users, n_items=data.n_items, n_entities=data.n_entities,
               n_relations=model.relation.num_embeddings, adj_entity=model.adj_entity,
               adj_relation=model.adj_relation, config=ModelConfig(n_neighbours=8))
