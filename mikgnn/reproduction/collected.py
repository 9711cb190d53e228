"""A reproduction's figures as the report reads them: one value per (table, row, column) and seed.

``distributed/reproduction_store.py`` fills them from MLflow alone; ``report.py`` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mikgnn.reproduction.tables import TABLES

DIAGNOSTICS = ("attention_entropy", "relation_norm")  # read beside the accuracy metrics (Table 5's note)


@dataclass
class Collected:
    experiment: str
    dataset: str
    # (table, row label, column) -> {seed: value}
    values: dict[tuple[int, str, str], dict[int, float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # "<table>=<row>[|axis]" -> reason
    # "<table>=<row>[|axis]" -> (status, failure_reason or "") of the newest cell run that did not finish
    unfinished: dict[str, tuple[str, str]] = field(default_factory=dict)
    hardware: set[str] = field(default_factory=set)  # where Table 7's cells ran
    commands: list[str] = field(default_factory=list)  # the reproduction commands, oldest first, each once
    seeds: set[int] = field(default_factory=set)


def slot_columns(table: int, row_slot: str) -> tuple[str, list[str]]:
    """A tag value "MI-KGNN" or "MI-KGNN|n8" -> the row label and the table's columns it fills."""
    label, _, axis = row_slot.partition("|")
    spec = TABLES[table]
    return label, [f"{spec.metrics[0]}@{axis}"] if axis else list(spec.metrics)
