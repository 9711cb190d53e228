"""Defaults for a dataset of one's own, from its size (issue 16; measured in docs/benchmarks.md).

The paper's Table 1 has two regimes: music (25k training rows, 1.9k users: batch 128, lr 5e-4,
λ 9.1e-5 on the full tables) and movie / restaurant (millions of rows: batch 1024, lr 2e-3,
λ ~1e-7). A custom dataset gets the regime its size calls for, by these rules, each printed
with the run's settings:

1. Batch and learning rate: fewer than SMALL_ROWS training rows take music's batch 128, more
   take batch 1024 (Table 1's large column), so an epoch is not thousands of tiny steps; lr
   2e-3 at either size: music's 5e-4 converges too slowly (docs/benchmarks.md, *Defaults
   that converge*: at music's size, validation AUC 0.8238 after 100 epochs at 5e-4, 0.8302
   at 2e-3).
2. L2 (music's mode: λ times every row of every table, every step): under Adam a row the
   data rarely touches is pulled to zero by about lr per step. Music's λ 9.1e-5 on 15,000
   items collapsed the embeddings (item norms 1e-6 after 2 epochs, validation AUC 0.50,
   measured on benchmarks/synthetic_custom.py's data); λ scaled to keep λ x items at
   music's (9.1e-5 x 3,846) trained (AUC 0.72 after 5 epochs). In the large regime (batch
   1024) many rows pull the same way: at movie1m's 452,264 training rows music's λ peaked at
   validation AUC 0.855 in epoch 2 and fell, λ x rows kept at music's (5.1e-6) reached 0.914,
   as Table 1's movie column does; below it, a smaller λ overfits (38,590 rows: 0.837 at
   music's λ, 0.824 at λ x rows). So λ = 9.1e-5 x min(1, 3,846 / items), and x 25,408 /
   training rows too at SMALL_ROWS rows and more; never larger than music's.
3. d 16 and n 8 (music's): what was measured at these sizes.
4. Evaluation: full ranking costs users x items scores per evaluation, and validation runs
   every epoch. Above FULL_GRID_LIMIT scores the run validates and tests on EVAL_USERS sampled
   users (``protocol sampled``; AUC still over every row), and says how to ask for full
   ranking. Either way the run trains until it has converged (TrainConfig: patience 5 epochs
   without a validation gain above min_delta, within a budget of 100 epochs), and says so
   when the budget ends it first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mikgnn.config import Table1, table1

SMALL_ROWS = 50_000
LR = 2e-3  # at every size (rule 1)
MUSIC_L2, MUSIC_ITEMS, MUSIC_ROWS = 9.1e-5, 3_846, 25_408  # music's λ, items and training rows (seed 0)
FULL_GRID_LIMIT = 50_000_000  # users x items scored by one full-ranking evaluation
EVAL_USERS = 1000


@dataclass(frozen=True)
class DataSize:
    train_rows: int
    users: int
    items: int

    @classmethod
    def from_manifest(cls, manifest: dict) -> DataSize:
        return cls(int(manifest["rows"]["train"]), int(manifest["n_users"]), int(manifest["n_items"]))

    @property
    def grid(self) -> int:
        return self.users * self.items


@dataclass(frozen=True)
class SizeDefaults:
    """The settings a dataset's size chose, the keys they set, and why (one line per rule)."""

    table: Table1
    keys: tuple[str, ...]  # "model.dim", "train.lr", ...
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return "\n".join(self.reasons)


def size_defaults(size: DataSize) -> SizeDefaults:
    base = table1("music")
    model: dict = {}
    train: dict = {}
    reasons = []
    train.update(lr=LR)
    if size.train_rows < SMALL_ROWS:
        reasons.append(f"{size.train_rows:,} training rows < {SMALL_ROWS:,}: music's batch 128; lr {LR:g}")
    else:
        train.update(batch_size=1024)
        reasons.append(f"{size.train_rows:,} training rows >= {SMALL_ROWS:,}: Table 1's large column, batch 1024; "
                       f"lr {LR:g}")
    large = size.train_rows >= SMALL_ROWS
    scale = min(1.0, MUSIC_ITEMS / max(size.items, 1), MUSIC_ROWS / size.train_rows if large else 1.0)
    if scale < 1.0:
        train.update(l2=MUSIC_L2 * scale)
    rows = f", {MUSIC_ROWS:,} / training rows" if large else ""
    reasons.append(f"{size.items:,} items, {size.train_rows:,} training rows: λ = 9.1e-5 x min(1, {MUSIC_ITEMS:,} / "
                   f"items{rows}) = {MUSIC_L2 * scale:.3g} on the full tables (music's λ x items"
                   f"{', and at batch 1024 λ x rows' if large else ''})")
    reasons.append("d 16, n 8 (music's)")
    if size.grid > FULL_GRID_LIMIT:
        train.update(protocol="sampled", eval_users=EVAL_USERS)
        reasons.append(f"{size.users:,} users x {size.items:,} items = {size.grid:,} scores > {FULL_GRID_LIMIT:,} "
                       f"per full ranking: top-K on {EVAL_USERS} sampled users (--set protocol=full for every "
                       "user)")
    else:
        reasons.append(f"{size.grid:,} scores per full ranking <= {FULL_GRID_LIMIT:,}: full ranking")
    table = Table1(replace(base.model, **model), replace(base.train, **train))
    keys = tuple(f"model.{k}" for k in model) + tuple(f"train.{k}" for k in train)
    return SizeDefaults(table, keys, tuple(f"size rule {i + 1}: {r}" for i, r in enumerate(reasons)))


PRESETS = ("music", "movie", "restaurant")  # the columns of Table 1 (--preset)


def is_custom(dataset: str) -> bool:
    """A dataset without a Table 1 column of its own (a folder of one's own data)."""
    return dataset not in (*PRESETS, "movie1m")


def rule_for(dataset: str, preset: str | None, manifest: dict | None) -> SizeDefaults | None:
    """The size rule's settings for a custom ``dataset`` once its manifest is known; None for a
    dataset with a Table 1 column, or when ``preset`` names one."""
    if manifest is None or preset is not None or not is_custom(dataset):
        return None
    return size_defaults(DataSize.from_manifest(manifest))

