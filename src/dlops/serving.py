"""The MLflow pyfunc that serves a dlops tabular model on raw rows: transform, predict, name the classes.

Kept apart from tracking.py so a loaded model imports only what prediction needs (torch, pandas and
the dlops checkpoint/preprocess code shipped with it), never the pipeline or MLflow's client code.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel


class DlopsTabularModel(PythonModel):
    """Artifacts: `checkpoint` (models/<pair>/model.pt) and `transform` (the fitted transform.json)."""

    def load_context(self, context: Any) -> None:
        from dlops.data.preprocess import TabularTransform
        from dlops.training.checkpoint import load_model

        self._model, meta = load_model(Path(context.artifacts["checkpoint"]))
        self._classes = [str(c) for c in meta["classes"]]
        self._transform = TabularTransform.from_json(Path(context.artifacts["transform"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Raw rows in, one row out per input: `prediction` (class name) and `proba_<class>` columns."""
        from dlops.training.loop import predict_proba

        x = self._transform.transform(model_input)  # (N, F) float32
        proba = predict_proba(self._model, x) if len(x) else np.zeros((0, len(self._classes)))  # (N, K)
        out = pd.DataFrame({f"proba_{c}": proba[:, i] for i, c in enumerate(self._classes)})
        out.insert(0, "prediction", np.asarray(self._classes, dtype=object)[proba.argmax(axis=1)])
        return out
