"""Generators (GAN, VAE): a judge (the project's own CNN, trained here on the task's training split
with the settings in `evaluate.judge`) recognises conditional samples (`test/sample_accuracy`), its
penultimate features give a Frechet distance (not Inception FID), plus class coverage, a memorisation
check and a sample grid. With `evaluate.synthetic_fraction`, the judge is trained a second time with
that share of each batch replaced by generated samples, and both test accuracies are reported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dlops.evaluation import images
from dlops.objectives.base import Served

if TYPE_CHECKING:
    from dlops.params import ModelEntry, Paths

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray, dict[str, Any]]  # (x (N, C, H, W) in [0, 1], y (N,), groups)


def evaluate(
    model: Any, entry: ModelEntry, splits: dict[str, Split], classes: list[str], figures: Path
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
    if cfg.synthetic_fraction > 0:
        fed = train_judge(entry, splits, len(classes), feeder=model)
        metrics["generate/judge_test_accuracy_with_synthetic"] = _accuracy(judge_predict(fed, x_test), y_test)
        metrics["generate/synthetic_fraction"] = cfg.synthetic_fraction
    order = np.argsort(np.tile(np.arange(cfg.samples_per_class), len(sampled)), kind="stable")[:100]
    images.save_image_grid(samples[order], figures / "samples.png", ncol=len(sampled))
    names = np.asarray(classes, dtype=object)
    return metrics, {"actual": names[labels].tolist(), "predicted": names[judged].tolist()}


def train_judge(entry: ModelEntry, splits: dict[str, Split], num_classes: int, feeder: Any = None) -> Any:
    """The judge CNN, trained (seeded) on the training split; with `feeder`, a share of each training
    batch is replaced by the feeder's conditional samples for random labels."""
    from dlops.models.registry import build_model
    from dlops.training.loop import seed_everything, train

    judge_cfg = entry.evaluate.judge
    if judge_cfg is None:  # params.yaml refuses a generator without one; this keeps the type honest
        raise ValueError(f"models: a {entry.family} on task {entry.task!r} needs evaluate.judge")
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


def serving(p: Paths, pair: str) -> Served:
    """Conditional samples for the class labels a caller sends."""
    import pandas as pd

    return Served("generator", {"checkpoint": p.checkpoint(pair)}, pd.DataFrame({"label": [0, 1]}))
