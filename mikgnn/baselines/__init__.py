"""The paper's baselines and LightGCN, each one file behind the ``Recommender`` contract.

``BUILDERS`` maps a model name to the function that builds it from a processed dataset; the
models of ``mikgnn.models`` (MI-KGNN, KGCN, KGCN-LS, MF) are built there. A baseline that
learns from the user-item graph reads the train split's positive rows (``needs_train_rows``).
"""

from __future__ import annotations

from mikgnn.baselines.lightgcn import LightGCN, build_lightgcn

BUILDERS = {"lightgcn": build_lightgcn}
NEEDS_TRAIN_ROWS = frozenset({"lightgcn"})

__all__ = ["BUILDERS", "NEEDS_TRAIN_ROWS", "LightGCN"]
