"""The MLflow pyfunc that serves a dlops tabular model on raw rows: transform, predict, name the classes.

Kept apart from dlops.tracking so a loaded model imports only what prediction needs (torch, pandas and
the dlops checkpoint/preprocess code shipped with it), never the pipeline or MLflow's client code.
"""

import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel


class DlopsTabularModel(PythonModel):
    """Artifacts: `checkpoint` (models/<pair>/model.pt) and `transform` (the fitted transform.json)."""

    def load_context(self, context: Any) -> None:
        from dlops.kinds.tabular.transform import TabularTransform
        from dlops.training.checkpoint import load_model

        self._model, meta = load_model(Path(context.artifacts["checkpoint"]))
        self._classes = [str(c) for c in meta["classes"]]
        self._transform = TabularTransform.from_json(Path(context.artifacts["transform"]))
        self._fair = _fair_thresholds(context)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Raw rows in, one row out per input: `prediction` (class name) and `proba_<class>` columns."""
        from dlops.training.loop import predict_proba

        self._transform.check_servable(model_input)  # ±inf, absurd magnitudes: refused, named
        x = self._transform.transform(model_input)  # (N, F) float32
        proba = predict_proba(self._model, x) if len(x) else np.zeros((0, len(self._classes)))  # (N, K)
        return _class_frame(proba, self._classes, self._fair, model_input, x)


def _fair_thresholds(context: Any) -> Any:
    """The fair thresholds shipped with a mitigated model (artifact `fair_thresholds`), or None."""
    if "fair_thresholds" not in context.artifacts:
        return None
    from dlops.mitigation import FairThresholds

    return FairThresholds.from_json(Path(context.artifacts["fair_thresholds"]))


def _class_frame(
    proba: np.ndarray, classes: list[str], fair: Any = None, rows: Any = None, inputs: Any = None
) -> pd.DataFrame:
    """`prediction` (class name) and `proba_<class>` columns; with fair thresholds, the prediction is the
    thresholded decision for each row's group (the sensitive columns must be in `rows`), its draw keyed
    by the row's model input (`inputs`, what the network scored)."""
    if not np.isfinite(proba).all():  # never a class beside a NaN probability
        rows = np.flatnonzero(~np.isfinite(proba).all(axis=1))
        raise ValueError(f"row(s) {rows[:5].tolist()}: the model's probabilities are not finite numbers")
    out = pd.DataFrame({f"proba_{c}": proba[:, i] for i, c in enumerate(classes)})
    decided = proba.argmax(axis=1)
    if fair is not None and len(proba):
        from dlops.mitigation import joint_groups

        missing = [a for a in fair.attributes if a not in rows.columns]
        if missing:
            raise KeyError(f"this model applies fair thresholds per {fair.attributes}: input lacks {missing}")
        groups = joint_groups({a: rows[a].to_numpy() for a in fair.attributes}, fair.attributes)
        decided = fair.predict(proba[:, 1], groups, inputs)
    out.insert(0, "prediction", np.asarray(classes, dtype=object)[decided])
    return out


def _pixels(model_input: Any, shape: Any) -> Any:
    """uint8 or [0, 1] float images (N, C, H, W) as a float32 tensor in [0, 1]. Anything else is refused
    with a ValueError naming the shape or the rows: a wrong shape, and floats outside [0, 1] (e.g. 0-255
    values given as floats) or not finite, which would otherwise score silently as something else."""
    import torch

    array = np.asarray(model_input)
    want = tuple(int(size) for size in shape)
    if array.ndim != len(want) + 1 or array.shape[1:] != want:
        raise ValueError(
            f"images: input shape {array.shape}; this model takes (N, {', '.join(map(str, want))}) arrays"
        )
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32) / 255.0)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"images: dtype {array.dtype}; give uint8 (0-255) or floats in [0, 1]")
    values = np.array(array, dtype=np.float32)
    bad = (~np.isfinite(values) | (values < 0) | (values > 1)).reshape(len(values), -1).any(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"images, row(s) {rows[:5].tolist()}: pixel values outside [0, 1] or not finite "
            f"(min {np.nanmin(values[rows]):.4g}, max {np.nanmax(values[rows]):.4g}); give uint8 (0-255) "
            "or floats in [0, 1]"
        )
    return torch.from_numpy(values)


class DlopsImageClassifier(PythonModel):
    """Images (N, C, H, W), uint8 or floats in [0, 1], in; `prediction` and `proba_<class>` out."""

    def load_context(self, context: Any) -> None:
        from dlops.training.checkpoint import load_model

        self._model, meta = load_model(Path(context.artifacts["checkpoint"]))
        self._classes = [str(c) for c in meta["classes"]]
        self._shape = meta["input_shape"]

    # np.ndarray: what MLflow passes for a tensor signature, and a hint it validates nothing against
    # (a hint it cannot read, such as Any, makes every load print a warning)
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from dlops.training.loop import predict_proba

        x = _pixels(model_input, self._shape).numpy()
        proba = predict_proba(self._model, x) if len(x) else np.zeros((0, len(self._classes)))  # (N, K)
        return _class_frame(proba, self._classes)


class DlopsAnomalyModel(PythonModel):
    """Images in; `anomaly_score` (higher = more unusual) and `is_anomaly` (score above the threshold
    chosen on the validation split, artifact `threshold`; flagged when score >= threshold) out."""

    def load_context(self, context: Any) -> None:
        import json

        from dlops.training.checkpoint import load_model

        self._model: Any
        self._model, meta = load_model(Path(context.artifacts["checkpoint"]))
        self._shape = meta["input_shape"]
        self._threshold = float(json.loads(Path(context.artifacts["threshold"]).read_text())["threshold"])

    # np.ndarray: what MLflow passes for a tensor signature, and a hint it validates nothing against
    # (a hint it cannot read, such as Any, makes every load print a warning)
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        import torch

        with torch.no_grad():
            scores = self._model.anomaly_score(_pixels(model_input, self._shape)).double().numpy()  # (N,)
        return pd.DataFrame({"anomaly_score": scores, "is_anomaly": scores >= self._threshold})


class DlopsGeneratorModel(PythonModel):
    """A frame with a `label` column (class index) in; generated images (N, C, H, W) in [0, 1] out.
    `params={"seed": s}` makes the draw reproducible (default 0)."""

    def load_context(self, context: Any) -> None:
        from dlops.training.checkpoint import load_model

        self._model: Any
        self._model, _ = load_model(Path(context.artifacts["checkpoint"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        import torch

        labels = torch.from_numpy(np.array(model_input["label"], dtype=np.int64))  # own, writable copy
        generator = torch.Generator().manual_seed(int((params or {}).get("seed", 0)))
        with torch.no_grad():
            return self._model.sample(labels, generator).float().numpy()


class DlopsTextClassifier(PythonModel):
    """A frame with a `text` column (and the sensitive columns, for a model with fair thresholds) in;
    `prediction` and `proba_<class>` out (tokenizer shipped along)."""

    def load_context(self, context: Any) -> None:
        from dlops.kinds.text.tokenizer import WordTokenizer, attach
        from dlops.training.checkpoint import load_model

        self._model, meta = load_model(Path(context.artifacts["checkpoint"]))
        self._classes = [str(c) for c in meta["classes"]]
        self._tokenizer = WordTokenizer.from_json(Path(context.artifacts["tokenizer"]))
        attach(self._model, self._tokenizer)  # words never seen in training read by their n-grams
        # the server scores requests in threads; a request's spelled words are the shared tokenizer's
        # until forgotten, so requests of a subword model take turns (others run side by side)
        self._spelling = threading.Lock() if self._tokenizer.subword_buckets else contextlib.nullcontext()
        self._fair = _fair_thresholds(context)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from dlops.kinds.text.tokenizer import new_words_forgotten
        from dlops.training.loop import predict_proba

        texts = _texts(model_input)
        # a request's new words are read by their spelling, then forgotten: memory stays flat
        with self._spelling, new_words_forgotten(self._model, self._tokenizer):
            ids, _ = self._tokenizer.encode(texts)  # (N, L) int64
            proba = predict_proba(self._model, ids) if len(ids) else np.zeros((0, len(self._classes)))
        return _class_frame(proba, self._classes, self._fair, model_input, ids)


def _texts(model_input: Any) -> list[str]:
    """The `text` column as strings; a missing column or a row that is not a string (None, NaN, a
    number) is refused naming the rows, never scored as the text "None"."""
    if not isinstance(model_input, pd.DataFrame) or "text" not in model_input.columns:
        frame = isinstance(model_input, pd.DataFrame)
        got = list(model_input.columns) if frame else type(model_input).__name__
        raise ValueError(f"input lacks column 'text' (got {got})")
    texts = model_input["text"].tolist()
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise ValueError(
            f"input column 'text', row(s) {bad[:5]}: {type(texts[bad[0]]).__name__} values, not text"
        )
    return texts


class DlopsForecaster(PythonModel):
    """A frame of history (`series`, `timestamp`, `value`, covariates) in; the next `horizon` steps of
    each series out: `series`, `step`, `timestamp`, `forecast`, `lower`, `upper`. Artifacts: `checkpoint`,
    `transform` (the task's transform.json) and `intervals` (conformal widths fitted at evaluation)."""

    def load_context(self, context: Any) -> None:
        import json

        from dlops.training.checkpoint import load_model

        self.model, _ = load_model(Path(context.artifacts["checkpoint"]))
        self.transform = json.loads(Path(context.artifacts["transform"]).read_text(encoding="utf-8"))
        self.intervals = json.loads(Path(context.artifacts["intervals"]).read_text(encoding="utf-8"))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from dlops.kinds.timeseries.forecast import forecast_frame

        return forecast_frame(self.model, self.transform, self.intervals, model_input)


SERVING_CLASSES: dict[str, Any] = {
    "tabular": DlopsTabularModel,
    "image-classifier": DlopsImageClassifier,
    "text-classifier": DlopsTextClassifier,
    "anomaly": DlopsAnomalyModel,
    "generator": DlopsGeneratorModel,
    "forecaster": DlopsForecaster,
}
