"""Does a pretrained encoder help a classifier with few labels? (stage `pretraining`)

For each seed, a stratified `label_fraction` of the training and validation rows (at least one per
class) trains the same CNN twice: from scratch, and with its first conv + BatchNorm of every block
taken from an autoencoder's or VAE's encoder (training/transfer.py), which learned on images without
their labels. Both arms start from the same seed and see the same rows in the same order; both are
scored on the full test split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dlops.params import PretrainingConfig, TrainConfig

ARMS = ("scratch", "pretrained")
Split = tuple[np.ndarray, np.ndarray]


def label_subset(y: np.ndarray, fraction: float, seed: int, num_classes: int) -> np.ndarray:
    """Sorted row indices of a stratified `fraction` of `y`: round(fraction * n_c) rows of each class c
    present, at least one, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(num_classes):
        rows = np.flatnonzero(y == c)
        if len(rows):
            take = max(1, int(round(fraction * len(rows))))
            keep.append(rng.choice(rows, size=take, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def train_encoder(
    family: str,
    model_config: dict[str, Any],
    train: TrainConfig,
    data: dict[str, Split],
    num_classes: int,
    input_shape: tuple[int, ...],
) -> dict[str, Any]:
    """An autoencoder or VAE of `model_config` (its `normal_classes` dropped) trained with `train` on
    every training image (early stopping on every validation image); labels are not used by an
    autoencoder's loss. Returns its checkpoint dict, as a model file would hold it."""
    from dlops.models.registry import build_model
    from dlops.training.checkpoint import model_checkpoint
    from dlops.training.loop import seed_everything
    from dlops.training.loop import train as fit

    config = {key: value for key, value in model_config.items() if key != "normal_classes"}
    cfg = train.model_copy(update={"init_from": None, "freeze": [], "head_lr": None})
    seed_everything(cfg.seed)
    model = build_model(family, input_shape=input_shape, num_classes=num_classes, config=config)
    result = fit(model, {"train": data["train"], "val": data["val"]}, cfg)
    classes = [str(c) for c in range(num_classes)]
    return model_checkpoint(
        model=result.model,
        pair="pretraining-encoder",
        task="",
        family=family,
        model_config=config,
        input_shape=input_shape,
        classes=classes,
        train_config=cfg.model_dump(mode="json"),
        best_epoch=result.best_epoch,
    )


def arm_config(classifier: TrainConfig, study: PretrainingConfig, seed: int, arm: str) -> TrainConfig:
    """The classifier's train settings with this seed and no parent (and without early stopping unless
    the study asks for it); the pretrained arm takes the study's `freeze` and `head_lr`."""
    update: dict[str, Any] = {"seed": seed, "init_from": None, "freeze": [], "head_lr": None}
    if not study.early_stopping:
        update["patience"] = classifier.epochs
    if arm == "pretrained":
        update.update(freeze=list(study.freeze), head_lr=study.head_lr)
    return classifier.model_copy(update=update)


def cnn_from_encoder(cnn_config: dict[str, Any], encoder: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The CNN's model mapping with the encoder's `channels` (every encoder stage has a block to go to),
    and the function that loads the encoder's conv + BatchNorm tensors into such a CNN."""
    from dlops.training import transfer

    parent = transfer.Parent("encoder", "encoder", str(encoder["family"]), encoder, "")

    def load(model: Any) -> dict[str, Any]:
        done = transfer.transfer_weights(model, "cnn", parent, "pretraining.encoder")
        return {"loaded": done.loaded, "mapped": done.mapped, "unused": done.unused}

    return {**cnn_config, "channels": list(encoder["model_config"]["channels"])}, load


def run_study(
    study: PretrainingConfig,
    *,
    family: str,
    config: dict[str, Any],
    load_encoder: Callable[[Any], dict[str, Any]],
    train: TrainConfig,
    data: dict[str, Split],
    num_classes: int,
    input_shape: tuple[int, ...],
    augment: Any = None,
) -> dict[str, Any]:
    """Train both arms for every seed; returns the report: rows used, per-seed and mean test accuracy
    and balanced accuracy of each arm, the gain, and which encoder tensors were loaded.

    Both arms build the classifier `family` of `config` from the same seed; `load_encoder(model)` puts
    the pretrained tensors into the pretrained arm's and says which."""
    import torch
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from dlops.models.registry import build_model
    from dlops.training.loop import predict_proba, seed_everything
    from dlops.training.loop import train as fit

    x_test, y_test = data["test"]
    per_seed: dict[str, dict[str, dict[str, float]]] = {arm: {} for arm in ARMS}
    rows: dict[str, int] = {}
    loaded: Any = None
    for seed in study.seeds:
        subsets = {}
        for offset, split in enumerate(("train", "val")):
            x, y = data[split]
            keep = label_subset(y, study.label_fraction, seed + 1000 * offset, num_classes)
            subsets[split] = (x[keep], y[keep])
            rows[split] = len(keep)
        for arm in ARMS:
            cfg = arm_config(train, study, seed, arm)
            seed_everything(seed)  # the same initial weights in both arms, before the encoder's go in
            model = build_model(family, input_shape=input_shape, num_classes=num_classes, config=config)
            if arm == "pretrained":  # every seed's pretrained arm starts from the encoder
                done = load_encoder(model)
                loaded = loaded or done
            result = fit(model, subsets, cfg, augment=augment)
            with torch.no_grad():
                pred = predict_proba(result.model, x_test).argmax(1)
            per_seed[arm][str(seed)] = {
                "accuracy": float(accuracy_score(y_test, pred)),
                "balanced_accuracy": float(balanced_accuracy_score(y_test, pred)),
                "best_epoch": float(result.best_epoch),
            }
    report: dict[str, Any] = {
        "label_fraction": study.label_fraction,
        "labelled_rows": rows,
        "test_rows": int(len(y_test)),
        "seeds": list(study.seeds),
    }
    for arm in ARMS:
        runs = per_seed[arm].values()
        report[arm] = {
            "accuracy": float(np.mean([r["accuracy"] for r in runs])),
            "balanced_accuracy": float(np.mean([r["balanced_accuracy"] for r in runs])),
            "per_seed": per_seed[arm],
        }
    report["gain"] = {
        key: report["pretrained"][key] - report["scratch"][key] for key in ("accuracy", "balanced_accuracy")
    }
    report["wins"] = sum(
        per_seed["pretrained"][s]["accuracy"] > per_seed["scratch"][s]["accuracy"]
        for s in per_seed["scratch"]
    )
    report["transfer"] = loaded
    return report


def study_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The report's numbers as flat MLflow metric names: scratch/accuracy, gain/accuracy, ..."""
    metrics = {f"gain/{key}": value for key, value in report["gain"].items()}
    for arm in ARMS:
        for key in ("accuracy", "balanced_accuracy"):
            metrics[f"{arm}/{key}"] = report[arm][key]
        for seed, scores in report[arm]["per_seed"].items():
            metrics[f"{arm}/seed_{seed}/accuracy"] = scores["accuracy"]
    return metrics


def plot_study(path: Path, report: dict[str, Any], title: str) -> Path:
    """Test accuracy of both arms, one pair of bars per seed and the mean."""
    from dlops.evaluation.plots import png_figure

    seeds = list(report["scratch"]["per_seed"])
    labels = [f"seed {s}" for s in seeds] + ["mean"]
    x = np.arange(len(labels))
    with png_figure(path, (6.4, 3.6)) as fig:
        ax = fig.add_subplot()
        for i, arm in enumerate(ARMS):
            values = [report[arm]["per_seed"][s]["accuracy"] for s in seeds] + [report[arm]["accuracy"]]
            bars = ax.bar(x + (i - 0.5) * 0.38, values, width=0.38, label=arm)
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.set_xticks(x, labels)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.0, 1.05)
        ax.set_title(f"{title}: {report['label_fraction']:.0%} of the labels", fontsize=10)
        ax.legend(loc="lower right")
    return path
