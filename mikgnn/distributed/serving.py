"""The best trial of a search as an MLflow pyfunc model: a table of user ids in, their top K out.

    predict(DataFrame{user: original id}, params={"k": 10})
        -> DataFrame{user, rank, item, score}     original ids; each user's training items excluded

The model carries what it needs: the trial's checkpoint (state.pt + config.json), the parts of
the processed dataset that rebuild it (train split, KG, id maps, manifest) and the ``mikgnn``
package itself (``code_paths``), so ``mlflow models serve -m models:/<dataset>/latest
--env-manager local`` serves it from the registry on any machine with the project's
dependencies. A user id that is not in the dataset gets no rows (and a warning in the server's
log); the others are still served. A k out of range is answered 400 with one line; an error
while recommending, 500 with one line (its traceback in the server's log).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow.fs as pafs
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from mikgnn.distributed.tracking import CHECKPOINT_ARTIFACT, quiet_mlflow
from mikgnn.storage import Location

DEFAULT_K = 10
PACKAGE = Path(__file__).resolve().parents[1]  # mikgnn/
SERVED_PARTS = ("train", "kg", "ids", "manifest.json")


class RecommenderModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from mikgnn.model_store import load_trained

        self.trained = load_trained(context.artifacts["checkpoint"], context.artifacts["processed"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from mikgnn.recommend import Recommendations, resolve_users

        k, n_items = (params or {}).get("k", DEFAULT_K), self.trained.model.n_items
        if not 1 <= k <= n_items:  # MLflow's scoring server answers 400 with this line, no traceback
            raise MlflowException(f"params.k must be from 1 to {n_items} (the catalogue's items), got {k}",
                                  error_code=INVALID_PARAMETER_VALUE)
        users = resolve_users([str(u) for u in model_input["user"]], self.trained.ids["users"])
        if users.unknown:
            logging.getLogger(__name__).warning("unknown user ids, not served: %s", users.unknown[:20])
        try:
            rows = Recommendations(self.trained, int(k)).block(users.indices)
        except Exception as exc:  # the traceback goes to the server's log, one line to the client
            logging.getLogger(__name__).exception("recommending failed")
            raise MlflowException(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                                  error_code=INTERNAL_ERROR) from None
        return pd.DataFrame(rows)


def _served_dataset(processed: Location, into: Path) -> Path:
    """The parts of the processed dataset that rebuild the model, copied into ``into``."""
    for part in SERVED_PARTS:
        source = processed / part
        target = into if source.is_file() else into / part  # a folder's files land in a folder of its name
        target.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(source.path, str(into / part), source_filesystem=processed.fs,
                        destination_filesystem=pafs.LocalFileSystem())
    return into


def log_best_model(tracking_uri: str, trial_run_id: str, processed: Location, registered_name: str) -> str:
    """Log the trial's best checkpoint as its run's pyfunc model ``model`` (so the trial's page
    shows the registered version) and register it as ``registered_name`` where the store has a
    registry; the model URI."""
    from mikgnn.model_store import load_trained

    client = mlflow.MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = client.download_artifacts(trial_run_id, CHECKPOINT_ARTIFACT, tmp)
        data = _served_dataset(processed, Path(tmp) / "processed")
        model = RecommenderModel()
        model.trained = load_trained(checkpoint, str(data))  # what load_context does in the server
        example = pd.DataFrame({"user": model.trained.ids["users"][:2]})
        with warnings.catch_warnings():  # MLflow's note that integer columns cannot hold missing values
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            signature = infer_signature(example, model.predict(None, example, {"k": DEFAULT_K}),
                                        params={"k": DEFAULT_K})
        mlflow.set_tracking_uri(tracking_uri)
        ended = client.get_run(trial_run_id).info.end_time
        with mlflow.start_run(run_id=trial_run_id), quiet_mlflow():
            info = mlflow.pyfunc.log_model(name="model", python_model=RecommenderModel(),
                                           artifacts={"checkpoint": checkpoint, "processed": str(data)},
                                           code_paths=[str(PACKAGE)], signature=signature,
                                           input_example=example, pip_requirements=_requirements())
        client.set_terminated(trial_run_id, status="FINISHED", end_time=ended)  # the trial's own time span
        try:
            with quiet_mlflow():
                mlflow.register_model(info.model_uri, registered_name)
        except MlflowException as exc:  # a file store has no registry: the run's model still serves
            logging.getLogger(__name__).warning("model not registered as %r: %s", registered_name,
                                                str(exc).splitlines()[0])
    return info.model_uri


def _requirements() -> list[str]:
    import pyarrow
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
            f"pandas=={pd.__version__}", f"numpy=={np.__version__}", f"pyarrow=={pyarrow.__version__}", "pyyaml"]
