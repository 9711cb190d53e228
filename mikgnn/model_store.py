"""A trained model on disk: its weights (tensors only) and the configuration that rebuilds it.

    <folder>/state.pt      {"model": state dict, ...}: read with torch.load(weights_only=True),
                           so a planted object is refused instead of run
    <folder>/config.json   {"model": ModelConfig, "train": TrainConfig, "processed": folder or URI}

``pipelines/train.py`` writes one as <output>/checkpoint/; every checkpoint of a Ray Train or
Tune run has the same two files (with the optimizer and resume state besides), and a trial's
best epoch is its MLflow artifact ``best_checkpoint/`` (``export_best``: the weights alone,
a quarter of the resume checkpoint's size). ``load_trained`` rebuilds the model
from the processed dataset it was trained on (its neighbour tables, user-item graph, id maps).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.models import Recommender, build_model
from mikgnn.processed import ProcessedDataset, load_processed, read_ids

STATE_FILE, CONFIG_FILE = "state.pt", "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint that holds more than tensors and plain data, or lacks its parts."""


def write_config(folder: str | os.PathLike, model: ModelConfig, train: TrainConfig, processed) -> None:
    config = {"model": asdict(model), "train": asdict(train), "processed": str(processed)}
    (Path(folder) / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")


def save_model(folder: str | os.PathLike, model: Recommender, model_cfg: ModelConfig, train_cfg: TrainConfig,
               processed) -> Path:
    """The model's weights and configuration in ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, folder / STATE_FILE)
    write_config(folder, model_cfg, train_cfg, processed)
    return folder


def load_state(folder: str | os.PathLike) -> dict:
    """state.pt of ``folder``, tensors and plain containers only."""
    path = Path(folder) / STATE_FILE
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"checkpoint {path} holds more than tensors and plain data, so it is not "
                              f"loaded (it could run code): {str(exc).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:  # a torn or truncated file: not a refusal
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({cause}): a copy cut short, or a disk "
                              "that filled up; it is not loaded") from None


def export_best(checkpoint: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """The best epoch's weights of a resume checkpoint, without the optimizer and resume state,
    with its configuration, in ``folder``: what a model needs, not what training needs."""
    state, folder = load_state(checkpoint), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state.get("best_state") or state["model"]}, folder / STATE_FILE)
    (folder / CONFIG_FILE).write_bytes((Path(checkpoint) / CONFIG_FILE).read_bytes())
    return folder


@dataclass
class Trained:
    """A model rebuilt from a checkpoint, with the data that recommending from it needs."""

    model: Recommender
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    data: ProcessedDataset  # the train split and the KG
    ids: dict[str, np.ndarray]  # kind -> original id of each index (``processed.read_ids``)
    processed: str


def load_trained(folder: str | os.PathLike, processed: str | None = None,
                 device: torch.device | str = "cpu") -> Trained:
    """The model of checkpoint ``folder``, in eval mode on ``device``; ``processed`` overrides
    the recorded processed dataset (a copy of it elsewhere)."""
    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    if not (folder / STATE_FILE).is_file() or not config_path.is_file():
        raise CheckpointError(f"{folder} is not a model checkpoint: it needs {STATE_FILE} and {CONFIG_FILE}")
    config = json.loads(config_path.read_text())
    model_cfg = ModelConfig(**config["model"])
    train_cfg = TrainConfig(**(config["train"] | {"ks": tuple(config["train"]["ks"])}))
    source = processed or config["processed"]
    data = load_processed(source, splits=("train",))
    model = build_model(data, model_cfg, train_cfg.seed)
    state = load_state(folder)
    model.load_state_dict(state.get("best_state") or state["model"])  # a resume checkpoint: its best epoch
    return Trained(model.to(device).eval(), model_cfg, train_cfg, data, read_ids(source), str(source))
