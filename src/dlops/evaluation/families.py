"""Evaluation of the image families that are not classifiers: anomaly detectors and generators.

- anomaly (autoencoder, vae): the model trained on `normal_classes` only; every other class is an
  anomaly. ROC-AUC and average precision on test, a threshold chosen on validation, a reconstruction
  grid, and the train-vs-validation reconstruction gap as the overfitting measure.
- generator (gan, vae): a judge (the project's own CNN, trained here on the task's training split with
  the settings in `evaluate.judge`) recognises conditional samples (`test/sample_accuracy`), its
  penultimate features give a Frechet distance (not Inception FID), plus class coverage, a
  memorisation check and a sample grid. For a gan with `evaluate.synthetic_fraction`, the judge is
  trained a second time with that share of each batch replaced by generated samples, and both test
  accuracies are reported.
Every file dvc.yaml declares for evaluate is written, with empty tables where a plot does not apply.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlops.evaluation import images, plots
from dlops.evaluation.report import write_json

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray, dict[str, Any]]  # (x (N, C, H, W) in [0, 1], y (N,), groups)
DEFAULT_RECONSTRUCTION_GAP = 0.25  # diagnosis threshold when the gate is not set
DEFAULT_MEMORIZATION_RATIO = 0.8


def evaluate_non_classifier(
    model: Any,
    kinds: frozenset[str],
    entry: Any,
    splits: dict[str, Split],
    classes: list[str],
    history: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    figures = out / "figures"
    scores: dict[str, Any] = {}
    roc: list[dict[str, Any]] = []
    predictions: dict[str, list[Any]] = {"actual": [], "predicted": []}
    if "anomaly" in kinds:
        anomaly, roc, predictions = _anomaly(model, entry, splits, figures)
        scores.update(anomaly)
    if "generator" in kinds:
        generated, generated_predictions = _generator(model, entry, splits, classes, figures)
        scores.update(generated)
        if "anomaly" not in kinds:
            predictions = generated_predictions
    rows = history.get("epochs") or []
    scores["overfit/best_epoch"] = history.get("best_epoch")
    scores["overfit/epochs_run"] = len(rows)
    scores["overfit/diagnosis"] = _diagnosis(scores, entry.gates)

    write_json(out / "fairness.json", {})
    write_json(out / "mitigation.json", {"reweigh": [], "postprocess": None})
    write_json(out / "interpretation.json", {})
    write_json(out / "confusion.json", {})
    write_json(out / "roc.json", {"roc": roc})
    write_json(out / "calibration.json", {"calibration": []})
    write_json(out / "learning_curve.json", {"history": plots.history_rows(history)})
    _write_predictions(out / "predictions.csv", predictions)
    plots.plot_learning_curves(figures, history)
    return scores


# ----------------------------------------------------------------------------------------------- anomaly
@torch.no_grad()
def anomaly_scores(model: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Per-image anomaly scores (N,) of a model with `anomaly_score`, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model.anomaly_score(torch.from_numpy(np.array(x[i : i + batch_size])).to(device)).double().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


def _anomaly(
    model: Any, entry: Any, splits: dict[str, Split], figures: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, list[Any]]]:
    normal = entry.model.get("normal_classes")
    if normal is None:
        raise ValueError(
            f"models: family {entry.family!r} on task {entry.task!r} needs model.normal_classes to be "
            "evaluated as an anomaly detector (the other classes are the anomalies)"
        )
    scores = {name: anomaly_scores(model, x) for name, (x, _, _) in splits.items()}
    is_anomaly = {name: ~np.isin(y, normal) for name, (_, y, _) in splits.items()}
    metrics = images.anomaly_report(scores["val"], is_anomaly["val"], scores["test"], is_anomaly["test"])
    train_error = float(scores["train"][~is_anomaly["train"]].mean())
    val_error = float(scores["val"][~is_anomaly["val"]].mean())
    metrics.update(images.reconstruction_gap(train_error, val_error))
    if entry.evaluate.bootstrap and is_anomaly["test"].any() and not is_anomaly["test"].all():
        from dlops.evaluation.uncertainty import score_intervals

        cfg = entry.evaluate
        metrics.update(
            score_intervals(
                is_anomaly["test"].astype(int), scores["test"], cfg.bootstrap, cfg.confidence,
                entry.train.seed, "test", name="anomaly_roc_auc",
            )
        )  # fmt: skip

    x_test = splits["test"][0]
    pick = np.concatenate([np.flatnonzero(~is_anomaly["test"])[:8], np.flatnonzero(is_anomaly["test"])[:8]])
    with torch.no_grad():
        model.eval()
        recon, _ = model(torch.from_numpy(np.array(x_test[pick])))
    images.save_reconstruction_grid(x_test[pick], recon.float().numpy(), figures / "reconstructions.png")

    roc = _roc_points(is_anomaly["test"], scores["test"])
    threshold = metrics.get("anomaly/threshold")
    flagged = scores["test"] >= threshold if threshold is not None else np.zeros(len(x_test), bool)
    label = np.where(is_anomaly["test"], "anomaly", "normal").tolist()
    predictions = {"actual": label, "predicted": np.where(flagged, "anomaly", "normal").tolist()}
    return metrics, roc, predictions


def _roc_points(is_anomaly: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    from sklearn.metrics import roc_curve

    if is_anomaly.all() or not is_anomaly.any():
        return []
    fpr, tpr, _ = roc_curve(is_anomaly, scores)
    return [{"fpr": round(float(f), 6), "tpr": round(float(t), 6)} for f, t in zip(fpr, tpr, strict=True)]


# --------------------------------------------------------------------------------------------- generator
def _generator(
    model: Any, entry: Any, splits: dict[str, Split], classes: list[str], figures: Path
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    cfg = entry.evaluate
    x_train, y_train, _ = splits["train"]
    x_test, y_test, _ = splits["test"]
    judge = train_judge(entry, splits, len(classes))
    sampled = entry.model.get("normal_classes") or list(range(len(classes)))
    labels = np.repeat(np.asarray(sampled, dtype=np.int64), cfg.samples_per_class)  # (N,)
    samples = generate(model, labels, seed=entry.train.seed)  # (N, C, H, W) in [0, 1]
    judged = judge_predict(judge, samples)
    real = x_test[np.isin(y_test, sampled)]
    metrics = images.generator_report(
        labels,
        judged,
        len(classes),
        judge_features(judge, samples),
        judge_features(judge, real),
        samples,
        x_train[np.isin(y_train, sampled)],
        real,
        seed=entry.train.seed,
    )
    metrics["generate/judge_test_accuracy"] = _accuracy(judge_predict(judge, x_test), y_test)
    if cfg.synthetic_fraction > 0 and entry.family == "gan":
        fed = train_judge(entry, splits, len(classes), feeder=model)
        metrics["generate/judge_test_accuracy_with_synthetic"] = _accuracy(judge_predict(fed, x_test), y_test)
        metrics["generate/synthetic_fraction"] = cfg.synthetic_fraction
    order = np.argsort(np.tile(np.arange(cfg.samples_per_class), len(sampled)), kind="stable")[:100]
    images.save_image_grid(samples[order], figures / "samples.png", ncol=len(sampled))
    names = np.asarray(classes, dtype=object)
    return metrics, {"actual": names[labels].tolist(), "predicted": names[judged].tolist()}


def train_judge(entry: Any, splits: dict[str, Split], num_classes: int, feeder: Any = None) -> Any:
    """The judge CNN, trained (seeded) on the training split; with `feeder`, a share of each training
    batch is replaced by the feeder's conditional samples for random labels."""
    from dlops.models.registry import build_model
    from dlops.training.loop import seed_everything, train

    judge_cfg = entry.evaluate.judge
    seed_everything(judge_cfg.train.seed)
    x_train, y_train, _ = splits["train"]
    judge = build_model("cnn", input_shape=x_train.shape[1:], num_classes=num_classes, config=judge_cfg.model)
    augment = None
    if feeder is not None:
        fraction = entry.evaluate.synthetic_fraction

        def augment(
            x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
        ) -> tuple[torch.Tensor, torch.Tensor]:
            n = int(round(fraction * len(x)))
            fake_y = torch.randint(0, num_classes, (n,), generator=gen).to(y.device)
            with torch.no_grad():
                fake_x = feeder.sample(fake_y, gen).to(x.device, x.dtype)
            return torch.cat([fake_x, x[n:]]), torch.cat([fake_y, y[n:]])

    data = {name: (splits[name][0], splits[name][1]) for name in ("train", "val")}
    result = train(judge, data, judge_cfg.train, augment=augment)
    log.info("judge (%s): best epoch %d", "with synthetic" if feeder else "real only", result.best_epoch)
    return result.model


@torch.no_grad()
def generate(model: Any, labels: np.ndarray, seed: int, batch_size: int = 500) -> np.ndarray:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    chunks = [
        model.sample(torch.from_numpy(labels[i : i + batch_size]), gen).float().cpu()
        for i in range(0, len(labels), batch_size)
    ]
    return torch.cat(chunks).numpy()


@torch.no_grad()
def judge_predict(judge: Any, x: np.ndarray) -> np.ndarray:
    from dlops.training.loop import predict_proba

    return predict_proba(judge, x).argmax(axis=1)


@torch.no_grad()
def judge_features(judge: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    judge.eval()
    out = [
        judge.features(torch.from_numpy(np.array(x[i : i + batch_size]))).double()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy()


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return round(float((pred == y).mean()), 6)


# ------------------------------------------------------------------------------------------------ common
def _diagnosis(scores: dict[str, Any], gates: Any) -> str:
    gap = scores.get("overfit/reconstruction_gap")
    ratio = scores.get("generate/memorization_ratio")
    gap_limit = gates.max_reconstruction_gap
    ratio_limit = gates.min_memorization_ratio
    if gap is not None and gap > (DEFAULT_RECONSTRUCTION_GAP if gap_limit is None else gap_limit):
        return "overfitting"
    if ratio is not None and ratio < (DEFAULT_MEMORIZATION_RATIO if ratio_limit is None else ratio_limit):
        return "memorizing"
    return "ok"


def _write_predictions(path: Path, predictions: dict[str, list[Any]]) -> None:
    import pandas as pd

    pd.DataFrame(predictions, columns=["actual", "predicted"]).to_csv(path, index=False, lineterminator="\n")
