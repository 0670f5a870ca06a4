"""What one (task, family) pair trains on, the same for `train`, a search trial and every torchrun
rank: the split arrays its family reads, the seeded model, the kind's batch augmentation, reweighing
weights, and the fingerprint a resume checkpoint must match.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.kinds import kind_of
from dlops.kinds.base import Kind
from dlops.pairs.entry import searched_entry
from dlops.params import Params, Paths, params_hash

if TYPE_CHECKING:
    from dlops.params import ModelEntry

log = logging.getLogger(__name__)


@dataclass
class PairSetup:
    """The model, data and settings of one pair, the same on every rank."""

    entry: ModelEntry
    classes: list[str]
    input_shape: tuple[int, ...]
    model_config: dict[str, Any]
    model: Any
    fingerprint: str
    fit_args: dict[str, Any]  # train()'s keyword arguments


def train_setup(pair: str, params: Params, p: Paths) -> PairSetup:
    from dlops.files import file_sha256

    entry = searched_entry(pair, params, p)
    task_cfg = params.task(entry.task)
    kind = kind_of(task_cfg)
    classes, input_shape = task_classes_and_shape(p, kind, entry.task)
    model, model_config = seeded_model(p, kind, entry, classes, input_shape)
    fingerprint = params_hash(
        {
            "model": entry.model_dump(mode="json"),
            "augment": task_cfg.augment.model_dump(mode="json"),
            "data": "".join(file_sha256(kind.split_file(p, entry.task, s)) for s in ("train", "val")),
        }
    )
    fit_args = {
        "data": {split: training_data(p, kind, entry, split) for split in ("train", "val")},
        "cfg": entry.train,
        "sample_weights": reweigh(p, kind, entry),
        "augment": kind.batch_augment(task_cfg, len(classes)) if entry.train.augment else None,
        "resume_path": p.resume_checkpoint(pair),
        "fingerprint": fingerprint,
    }
    return PairSetup(entry, classes, input_shape, model_config, model, fingerprint, fit_args)


def seeded_model(
    p: Paths, kind: Kind, entry: ModelEntry, classes: list[str], input_shape: tuple[int, ...]
) -> tuple[Any, Any]:
    """(the entry's model, its config): built after seeding with `train.seed`, so a training run and a
    search trial of the same settings start from the same weights."""
    from dlops.models.registry import build_model
    from dlops.training.loop import seed_everything

    seed_everything(entry.train.seed)
    model_config = kind.model_config(json.loads(p.transform(entry.task).read_text()), entry.model)
    model = build_model(entry.family, input_shape=input_shape, num_classes=len(classes), config=model_config)
    return model, model_config


def task_classes_and_shape(p: Paths, kind: Kind, task: str) -> tuple[list[str], tuple[int, ...]]:
    """Class names and the shape of one model input, from the task's transform.json."""
    return kind.classes_and_shape(json.loads(p.transform(task).read_text()))


def model_split(p: Paths, kind: Kind, entry: ModelEntry, split: str) -> tuple[Any, Any, dict[str, Any]]:
    """(x, y, groups) of a split as this model sees it: with `train.max_rows`, the training split is a
    seeded sample of that many rows (in their original order), the same in training and evaluation."""
    x, y, groups = kind.load_split(p, entry.task, split)
    limit = entry.train.max_rows
    if split != "train" or limit is None or limit >= len(y):
        return x, y, groups
    import numpy as np

    rows = np.sort(np.random.default_rng(entry.train.seed).choice(len(y), size=limit, replace=False))
    return x[rows], y[rows], {name: values[rows] for name, values in groups.items()}


def training_data(p: Paths, kind: Kind, entry: ModelEntry, split: str) -> tuple[Any, Any]:
    """(x, y) of a split as a family trains on it: anomaly models see only their `normal_classes`."""
    x, y, _ = model_split(p, kind, entry, split)
    normal = entry.model.get("normal_classes")
    if normal is not None:
        import numpy as np

        keep = np.isin(y, normal)
        x, y = x[keep], y[keep]
    return x, y


def reweigh(p: Paths, kind: Kind, entry: ModelEntry) -> Any:
    """Kamiran-Calders weights of the training rows when `train.reweigh` names attributes, else None."""
    if not entry.train.reweigh:
        return None
    from dlops.mitigation import joint_groups, reweigh_weights

    _, y, groups = model_split(p, kind, entry, "train")
    weights = reweigh_weights(y, joint_groups(groups, entry.train.reweigh))
    log.info("train: reweighing by %s, weights %.3f..%.3f", entry.train.reweigh, weights.min(), weights.max())
    return weights


def resumable(path: Path, fingerprint: str) -> bool:
    """Whether the loop will resume from `path` (a readable resume checkpoint of these params and data)."""
    from dlops.training.checkpoint import CheckpointError, load_safe

    if not path.is_file():
        return False
    try:
        ckpt = load_safe(path)
    except CheckpointError:
        return False
    return ckpt.get("kind") == "resume" and ckpt.get("fingerprint") == fingerprint


def warm_start_record(p: Paths, pair: str) -> Path:
    """Which parent a warm start used, kept beside last.pt while the run may still be resumed."""
    return p.resume_checkpoint(pair).with_name("init_from.json")
