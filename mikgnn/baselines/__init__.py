"""The paper's baselines and LightGCN, each one file behind the ``Recommender`` contract.

``BUILDERS`` maps a model name to the function that builds it from a processed dataset; the
models of ``mikgnn.models`` (MI-KGNN, KGCN, KGCN-LS, MF) are built there. A baseline that
learns from the user-item graph reads the train split's positive rows (``needs_train_rows``).
"""

from __future__ import annotations

from mikgnn.baselines.agcn import AGCN, build_agcn
from mikgnn.baselines.ckan import CKAN, build_ckan
from mikgnn.baselines.cke import CKE, build_cke
from mikgnn.baselines.fm import FM, build_fm
from mikgnn.baselines.kgat import KGAT, build_kgat
from mikgnn.baselines.kgin import KGIN, build_kgin
from mikgnn.baselines.lightgcn import LightGCN, build_lightgcn
from mikgnn.baselines.per import PER, build_per
from mikgnn.baselines.ripplenet import RippleNet, build_ripplenet
from mikgnn.baselines.svd import SVD, build_svd

BUILDERS = {"svd": build_svd, "fm": build_fm, "fm-transe": build_fm, "per": build_per, "cke": build_cke,
            "ripplenet": build_ripplenet, "kgat": build_kgat, "ckan": build_ckan, "kgin": build_kgin,
            "agcn": build_agcn, "lightgcn": build_lightgcn}
NEEDS_TRAIN_ROWS = frozenset({"per", "ripplenet", "kgat", "ckan", "kgin", "agcn", "lightgcn"})

__all__ = ["AGCN", "BUILDERS", "CKAN", "CKE", "FM", "KGAT", "KGIN", "NEEDS_TRAIN_ROWS", "PER", "SVD", "LightGCN",
           "RippleNet"]
