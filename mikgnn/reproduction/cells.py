"""The cells of a reproduction: one training run each, with a deterministic identity.

A cell is a system (model and variant) at a seed, with n or h fixed where its table sweeps
them. Its settings are resolved like any run's (``settings.resolve_settings``: Table 1 < the
model's own defaults < variant < the reproduction's defaults < ``--set``). Its identity is
the readable key ``kind:model:variant:n<n>:h<h>:seed<s>`` and a hash of the resolved settings,
so that two tables that need the same run (Table 2's MI-KGNN and Table 8 at Table 1's n)
share it, a rerun finds it done, and a change of settings makes new cells instead of reusing
runs trained otherwise. Settings that change only what is logged (``LOGGING_ONLY``) are left
out of the hash: a run is the same cell whichever of them it had; so is a setting added since,
at the value that trains as runs did before it (``ADDED_SINCE``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from mikgnn.config import ModelConfig, TrainConfig
from mikgnn.reproduction.tables import TABLES, System, Table
from mikgnn.search_space import FIELD_MODELS
from mikgnn.settings import merge_flags, resolve_settings

# Accuracy cells: the protocol of docs/results.md (full ranking, early stopping on validation
# AUC with patience 5 on any gain, at most 40 epochs); validation's top-K (most of an epoch at
# a large receptive field) only for the best epoch. Timing cells: a few epochs, evaluation kept
# small (their figure is the training seconds of each epoch).
ACCURACY_DEFAULTS = {"train": {"epochs": 40, "patience": 5, "min_delta": 0.0, "protocol": "full", "topk_every": 0}}
LOGGING_ONLY = {"train": ("topk_every",)}
ADDED_SINCE = {"train": {"min_delta": 0.0}}  # key -> its value in the runs trained before it existed
TIMING_EPOCHS = 3


def timing_defaults(epochs: int) -> dict:
    return {"train": {"epochs": epochs, "patience": epochs, "min_delta": 0.0, "protocol": "sampled",
                      "eval_users": 20}}


@dataclass(frozen=True)
class Cell:
    kind: str  # accuracy | timing
    system: System
    seed: int
    model: ModelConfig
    train: TrainConfig
    slots: tuple[str, ...] = field(default=(), compare=False)  # "<table>=<row label>[|<axis><value>]"

    @property
    def key(self) -> str:
        variant = "" if self.system.variant == "mi-kgnn" else f":{self.system.variant}"
        return f"{self.kind}:{self.model.model}{variant}:n{self.model.n_neighbours}:h{self.model.hops}:seed{self.seed}"

    @property
    def identity(self) -> str:
        trained = {section: {k: v for k, v in asdict(config).items() if k not in LOGGING_ONLY.get(section, ())
                             and (k not in ADDED_SINCE.get(section, {}) or v != ADDED_SINCE[section][k])}
                   for section, config in (("model", self.model), ("train", self.train))}
        settings = json.dumps(trained, sort_keys=True)
        return f"{self.key}#{hashlib.sha1(settings.encode()).hexdigest()[:10]}"

    @property
    def field_size(self) -> int:
        """Entities in one item's receptive field: n^h, or n·h with FMK r; 0 for a model that
        samples no n-neighbour field (its hops propagate over the whole graph or triple sets)."""
        m = self.model
        if m.model not in FIELD_MODELS:
            return 0
        return m.n_neighbours * m.hops if m.adjusted_field else m.n_neighbours ** m.hops


@dataclass(frozen=True)
class Plan:
    """What a reproduction trains: its cells, and the ones it leaves out with the reason."""

    cells: tuple[Cell, ...]
    skipped: tuple[tuple[str, str], ...]  # (slot, reason)


def _cell(table: Table, system: System, seed: int, dataset: str, overrides: dict, axis_value: int | None,
          epochs: int | None, timing_epochs: int) -> Cell:
    axis_flag = {}
    if table.axis is not None:
        axis_flag = {"model": {"n_neighbours" if table.axis == "n" else "hops": axis_value}}
    defaults = ACCURACY_DEFAULTS if table.kind == "accuracy" else timing_defaults(timing_epochs)
    run_flags = {"train": {"seed": seed, "epochs": epochs if table.kind == "accuracy" else None}}
    settings = resolve_settings(dataset, system.model, system.variant, job_defaults=defaults,
                                flags=merge_flags(overrides, axis_flag, run_flags))
    slot = f"{table.number}={system.label}" + ("" if table.axis is None else f"|{table.axis}{axis_value}")
    return Cell(table.kind, system, seed, settings.model, settings.train, (slot,))


def plan(dataset: str, tables: tuple[int, ...], seeds: tuple[int, ...], overrides: dict | None = None,
         models: tuple[str, ...] | None = None, epochs: int | None = None, timing_epochs: int = TIMING_EPOCHS,
         max_field: int | None = None) -> Plan:
    """Every cell the tables need, each once (with every table slot it fills). ``models``
    keeps only those models' rows; ``max_field`` leaves out cells whose receptive field is
    larger (with the reason, which the report shows); timing cells run at the first seed only."""
    found: dict[str, Cell] = {}
    skipped = []
    for number in tables:
        table = TABLES[number]
        for system in table.systems:
            if models is not None and system.model not in models:
                skipped += [(f"{number}={system.label}" + ("" if table.axis is None else f"|{table.axis}{v}"),
                             "not run: left out by --models") for v in table.values or (None,)]
                continue
            for value in table.values or (None,):
                for seed in seeds[:1] if table.kind == "timing" else seeds:
                    cell = _cell(table, system, seed, dataset, overrides or {}, value, epochs, timing_epochs)
                    if max_field is not None and cell.field_size > max_field:
                        skipped.append((cell.slots[0], f"not run: receptive field n^h = {cell.field_size} > "
                                        f"max_field {max_field} (rerun with --set max_field={cell.field_size}, "
                                        "best on a GPU)"))
                        continue
                    known = found.get(cell.identity)
                    found[cell.identity] = cell if known is None else replace(
                        known, slots=tuple(dict.fromkeys(known.slots + cell.slots)))
    return Plan(tuple(found.values()), tuple(dict.fromkeys(skipped)))
