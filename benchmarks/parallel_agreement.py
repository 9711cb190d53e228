"""How far 2 Ray Train workers land from 1, per ParallelConfig mode, on the tests' tiny dataset.

    python benchmarks/parallel_agreement.py

The dataset, model and training of tests/test_ray_train.py (tiny_data(n_users=160,
per_user=8), seed 0, 8 epochs, full-ranking protocol), fitted with 1 worker and with 2 in
each mode. Prints one JSON line per mode: the test and validation AUC of both. It backs that
test's tolerances and the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from conftest import tiny_data  # noqa: E402
from test_ray_train import MODEL, TRAIN  # noqa: E402

from mikgnn.config import ParallelConfig  # noqa: E402
from mikgnn.distributed.cluster import connect  # noqa: E402
from mikgnn.distributed.trainer import make_trainer  # noqa: E402
from mikgnn.processed import save_processed  # noqa: E402

MODES = {"ddp-every-step": ParallelConfig(),
         "local-sgd": ParallelConfig(sync_every=4, batch_per_worker=True)}


def main() -> None:
    connect()
    with tempfile.TemporaryDirectory() as root:
        processed = save_processed(tiny_data(n_users=160, per_user=8), Path(root) / "tiny")

        def fit(workers: int, parallel: ParallelConfig, name: str) -> dict:
            trainer = make_trainer(processed, MODEL, TRAIN, workers=workers, parallel=parallel,
                                   storage_path=Path(root) / "ray", name=name)
            return trainer.fit().metrics

        one = fit(1, ParallelConfig(), "one")
        for mode, parallel in MODES.items():
            two = fit(2, parallel, mode)
            print(json.dumps({"mode": mode, "one_test_auc": one["test/auc"], "two_test_auc": two["test/auc"],
                              "one_valid_auc": one["valid/auc"], "two_valid_auc": two["valid/auc"]}), flush=True)


if __name__ == "__main__":
    main()
