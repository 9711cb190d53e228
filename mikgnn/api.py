"""The Python API: from a dataset's name to a trained model and its top-K, in a notebook.

    import mikgnn
    data = mikgnn.load("music")                        # prepares once, cached in processed/
    model = mikgnn.fit(data, model="mikgnn", epochs=10)
    print(model.evaluate(data.test))                   # AUC, F1, Recall@K, NDCG@K
    print(model.recommend(["2", "3"], k=10))           # DataFrame: user, rank, item, score

It is the code ``pipelines/prepare.py`` and ``pipelines/train.py`` run (one process, no Ray):
the same settings layers (Table 1, or a custom folder's size rule, then the keyword
settings, which take every ``--set`` key), the same early stopping, and ``save`` writes the
checkpoint format that ``recommend.py`` and the served MLflow model read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mikgnn.datasets import get_dataset
from mikgnn.experiment import build
from mikgnn.experiment import fit as fit_experiment
from mikgnn.model_store import Trained, load_trained, save_model
from mikgnn.prepare import prepare
from mikgnn.processed import FORMAT_VERSION, load_processed, read_ids, read_manifest
from mikgnn.recommend import Recommendations, resolve_users
from mikgnn.settings import RUN_SECTIONS, merge_flags, parse_overrides, resolve_settings
from mikgnn.size_rule import rule_for
from mikgnn.training import Rows, evaluate


@dataclass(frozen=True)
class Split:
    """One split of a prepared dataset (``Dataset.train``, ``.valid``, ``.test``)."""

    name: str
    processed: str


@dataclass(frozen=True)
class Dataset:
    """A prepared dataset: its name (Table 1's column, or a custom folder's name), its
    processed folder and its manifest (sizes, seed, what preparation kept)."""

    name: str
    processed: str
    manifest: dict

    @property
    def train(self) -> Split:
        return Split("train", self.processed)

    @property
    def valid(self) -> Split:
        return Split("valid", self.processed)

    @property
    def test(self) -> Split:
        return Split("test", self.processed)


def load(dataset: str, data_root: str | os.PathLike | None = None, seed: int = 0,
         processed: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """``dataset`` (movie, music, restaurant, movie1m, or a custom folder's path), prepared
    once into ``processed`` (default ``processed/<name>-seed<seed>``) and reused afterwards.
    ``data_root``: where the raw files are (default ``$MIKGNN_DATA_ROOT``, else ``./data``);
    ``download``: fetch missing official files first."""
    name = Path(dataset).name
    folder = Path(processed) if processed is not None else Path("processed") / f"{name}-seed{seed}"
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("format_version") != FORMAT_VERSION or manifest.get("seed") != seed:
        spec = get_dataset(dataset, None if data_root is None else str(data_root))
        spec.ensure_present(download)
        manifest = prepare(spec, folder, seed)
    return Dataset(name, str(folder), manifest)


class Model:
    """A trained model with what recommending from it needs. ``result``: the fit's own record
    (best epoch, validation and test metrics); empty for a model loaded from disk."""

    def __init__(self, trained: Trained, result: dict | None = None):
        self.trained, self.result = trained, result or {}

    def __repr__(self) -> str:
        cfg = self.trained.model_cfg
        return f"Model({cfg.model!r}, d={cfg.dim}, n={cfg.n_neighbours}, h={cfg.hops}, on {self.trained.processed})"

    def evaluate(self, split: Split | str = "test") -> dict[str, float]:
        """AUC and F1 over every row of the split, Recall@K and NDCG@K under the training's
        protocol (full ranking, or sampled users), keyed ``<split>/<metric>``."""
        name = split.name if isinstance(split, Split) else split
        data = load_processed(self.trained.processed, splits=tuple(dict.fromkeys(("train", name))))
        rows = {s: Rows.from_numpy(cols) for s, cols in data.splits.items()}
        metrics = evaluate(self.trained.model, name, rows[name], rows["train"], self.trained.model.n_items,
                           self.trained.train_cfg)
        return {k: float(v) for k, v in metrics.items()}

    def recommend(self, users: list[str] | None = None, k: int = 10, keep_seen: bool = False) -> pd.DataFrame:
        """The top ``k`` items of each user (original ids; None: every user), best first,
        without the items a user already has in training unless ``keep_seen``. A user id the
        dataset does not know gets no rows."""
        request = resolve_users(None if users is None else [str(u) for u in users], self.trained.ids["users"])
        return pd.DataFrame(Recommendations(self.trained, k, keep_seen=keep_seen).block(request.indices))

    def save(self, folder: str | os.PathLike) -> Path:
        """The model's checkpoint in ``folder``: what ``Model.load``, ``recommend.py --checkpoint``
        and the served model read. An existing checkpoint there is refused, not overwritten."""
        if (Path(folder) / "state.pt").exists():
            raise FileExistsError(f"{folder} already holds a checkpoint; save to a new folder")
        t = self.trained
        return save_model(folder, t.model, t.model_cfg, t.train_cfg, t.processed)

    @classmethod
    def load(cls, folder: str | os.PathLike, processed: str | os.PathLike | None = None) -> Model:
        """A checkpoint written by ``save``, ``train.py`` or a search (its ``best_checkpoint``)."""
        return cls(load_trained(folder, None if processed is None else str(processed)))


def _epoch_line(epoch: int, metrics: dict) -> None:
    line = f"epoch {epoch:3d}  loss {metrics['train/loss']:.4f}  valid auc {metrics['valid/auc']:.4f}"
    if "valid/recall@20" in metrics:
        line += f"  R@20 {metrics['valid/recall@20']:.4f}"
    print(line + (f"  warning: {metrics['warning']}" if "warning" in metrics else ""), flush=True)


def fit(data: Dataset, model: str = "mikgnn", epochs: int | None = None, seed: int = 0, verbose: bool = True,
        **settings) -> Model:
    """Train ``model`` on ``data`` with early stopping on validation; the best epoch's model.
    ``settings``: any ``--set`` key (``dim=32``, ``lr=1e-3``, ``protocol="sampled"``, …) over
    Table 1 (a custom folder: its size rule). ``verbose``: a line per epoch."""
    pairs = [f"{key}={json.dumps(list(v)) if isinstance(v, (list, tuple)) else v}" for key, v in settings.items()]
    flags = merge_flags(parse_overrides(pairs, RUN_SECTIONS), {"train": {"epochs": epochs, "seed": seed}})
    resolved = resolve_settings(data.name, model, flags=flags, base=rule_for(data.name, None, data.manifest))
    experiment = build(load_processed(data.processed), resolved.model, resolved.train)
    result = fit_experiment(experiment, resolved.train, _epoch_line if verbose else None)
    for warning in result["warnings"]:
        if verbose and warning.startswith("not converged"):
            print(f"warning: {warning}", flush=True)
    train_only = load_processed(data.processed, splits=("train",))
    trained = Trained(experiment.model.eval(), resolved.model, resolved.train, train_only, read_ids(data.processed),
                      data.processed)
    return Model(trained, result)
