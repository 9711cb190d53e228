"""The Python API (``mikgnn.load`` / ``fit`` / ``Model``): the README's block as written, on
the real music data, and its contract on a small custom folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import write_custom

import mikgnn
from mikgnn.processed import load_processed, read_ids
from mikgnn.settings import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def _seen(processed: str) -> dict[str, set[str]]:
    """Each user's training positives, in original ids."""
    train, ids = load_processed(processed, splits=("train",)).splits["train"], read_ids(processed)
    out: dict[str, set[str]] = {}
    for user, item in zip(train["user"][train["label"] == 1], train["item"][train["label"] == 1]):
        out.setdefault(str(ids["users"][user]), set()).add(str(ids["items"][item]))
    return out


@pytest.mark.slow
def test_the_readme_block_trains_music_and_recommends_unseen_items(shared_data, tmp_path, monkeypatch):
    block = re.search(r"<!-- example: api -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "the README lost its Python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIKGNN_DATA_ROOT", str(shared_data))
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    data, model = namespace["data"], namespace["model"]
    assert data.manifest["n_users"] == 1872 and (tmp_path / "processed" / "music-seed0").is_dir()
    assert 1 <= model.result["best_epoch"] <= 10 and model.evaluate(data.test)["test/auc"] > 0.7
    top = model.recommend(["2", "3"], k=10)
    assert list(top.columns) == ["user", "rank", "item", "score"] and len(top) == 20
    assert top.groupby("user")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    seen = _seen(data.processed)
    assert all(item not in seen[user] for user, item in zip(top["user"], top["item"]))
    with_seen = model.recommend(["2"], k=50, keep_seen=True)
    assert set(with_seen["item"]) & seen["2"]  # what keep_seen is for
    loaded = mikgnn.Model.load(tmp_path / "my-model")  # the README saved it
    np.testing.assert_allclose(loaded.recommend(["2", "3"], k=10)["score"], top["score"], rtol=1e-5)


def test_a_custom_folder_trains_with_keyword_settings_and_refuses_what_it_cannot_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = write_custom(tmp_path / "mine")
    data = mikgnn.load(str(folder))
    assert data.name == "mine" and Path(data.processed) == Path("processed/mine-seed0")
    assert mikgnn.load(str(folder)).manifest == data.manifest  # cached: prepared once
    model = mikgnn.fit(data, epochs=2, verbose=False, dim=8, protocol="full")
    assert model.trained.model_cfg.dim == 8 and model.trained.train_cfg.epochs == 2
    assert set(model.evaluate("valid")) >= {"valid/auc", "valid/recall@20"}
    assert model.recommend(["nobody"], k=3).empty  # an unknown user: no rows
    assert len(model.recommend(None, k=2)) == 2 * data.manifest["n_users"]
    model.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        model.save(tmp_path / "m")
    with pytest.raises(ConfigError, match="unknown key 'dimm'"):
        mikgnn.fit(data, epochs=1, dimm=8)
    baseline = mikgnn.fit(data, model="mf", epochs=1, verbose=False)
    assert baseline.trained.model_cfg.model == "mf"
