"""One function per DVC stage: params and paths in, files out. Shared by the CLI and the Prefect flow.

Every function reads params through `load_params()` (the only reader of params.yaml), writes its
outputs atomically, and raises a specific error naming the file, column or key when an input is bad.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from dlops.config import Params, Paths, TaskConfig, load_params, params_hash, paths

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
LABEL = "__label__"
GROUP_PREFIX = "__group__."


def _context(root: Path | None = None) -> tuple[Params, Paths]:
    p = paths(root)
    return load_params(p.params), p


def write_json(path: Path, data: Any) -> None:
    """Deterministic, atomic JSON (sorted keys, no NaN) so DVC metrics are byte-identical across runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- ingest
def ingest(task: str, root: Path | None = None) -> Path:
    """Load the task's source (built-in generator or a real table) into data/raw/<task>.parquet."""
    params, p = _context(root)
    task_cfg = params.task(task)
    frame = _write_raw(task, task_cfg, p)
    _ensure_suite(task, task_cfg, p, frame)
    return p.raw(task)


def _write_raw(task: str, task_cfg: TaskConfig, p: Paths) -> Any:
    from dlops.data.sources import load_raw, write_parquet_atomic

    frame = load_raw(task_cfg, p.root)
    write_parquet_atomic(frame, p.raw(task))
    log.info("ingest %s: %d rows x %d columns -> %s", task, len(frame), frame.shape[1], p.raw(task))
    return frame


def _ensure_suite(task: str, task_cfg: TaskConfig, p: Paths, frame: Any) -> None:
    """A table seen for the first time needs a suite before `validate` can run: draft one from it when
    params allow (TFDV's "infer, then validate"), else stop here with the command that drafts it."""
    suite_path = p.suite(task_cfg)
    if suite_path.is_file():
        return
    where = f"tasks.{task}.validate"
    if not task_cfg.validate_.draft_if_missing:
        raise FileNotFoundError(
            f"{suite_path}: no expectation suite for task {task!r} ({where}.suite); draft it with "
            f"`dlops expectations init {task}`, or set {where}.draft_if_missing: true"
        )
    from dlops.data.validation import draft_suite, save_suite

    save_suite(draft_suite(frame, task_cfg.columns, task_cfg.validate_, name=task), suite_path)
    log.warning(
        "ingest %s: drafted %s from this table; review it and commit it with the code", task, suite_path
    )


# -------------------------------------------------------------------------------------------- validate
def validate(task: str, root: Path | None = None) -> dict[str, Any]:
    """Check data/raw/<task>.parquet against the task's committed suite; raise on a critical failure."""
    import pandas as pd

    from dlops.data.validation import load_suite, raise_on_failure, validate_table

    params, p = _context(root)
    task_cfg = params.task(task)
    suite_path = p.suite(task_cfg)
    if not suite_path.is_file():
        raise FileNotFoundError(
            f"{suite_path}: no expectation suite for task {task!r}; "
            f"draft one with `dlops expectations init {task}`"
        )
    frame = pd.read_parquet(p.raw(task))
    summary = validate_table(
        frame, load_suite(suite_path), task_cfg.columns, task_cfg.validate_, p.data_docs(task)
    )
    write_json(p.validation_report(task), summary)
    raise_on_failure(summary, source=str(p.raw(task).relative_to(p.root)))
    return summary


def draft_expectations(task: str, root: Path | None = None, force: bool = False) -> Path:
    """Profile the task's raw table into a draft suite at the path params name (`dlops expectations init`)."""
    import pandas as pd

    from dlops.data.validation import draft_suite, save_suite

    params, p = _context(root)
    task_cfg = params.task(task)
    suite_path = p.suite(task_cfg)
    if suite_path.exists() and not force:
        raise FileExistsError(f"{suite_path} exists; pass --force to overwrite it")
    raw = p.raw(task)
    frame = pd.read_parquet(raw) if raw.exists() else _write_raw(task, task_cfg, p)
    suite = draft_suite(frame, task_cfg.columns, task_cfg.validate_, name=task)
    save_suite(suite, suite_path)
    return suite_path


# ------------------------------------------------------------------------------------------ preprocess
def preprocess(task: str, root: Path | None = None) -> dict[str, int]:
    """Split (seeded, stratified), fit the transform on train only; write the splits and transform.json."""
    import pandas as pd

    from dlops.data.preprocess import TabularTransform, make_split_frame, split_frame
    from dlops.data.sources import write_parquet_atomic

    params, p = _context(root)
    task_cfg = params.task(task)
    raw = pd.read_parquet(p.raw(task))
    splits = split_frame(raw, task_cfg.columns, task_cfg.preprocess.split)
    transform = TabularTransform.fit(splits["train"], task_cfg.columns, task_cfg.preprocess)
    p.processed(task).mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        write_parquet_atomic(make_split_frame(transform, frame), p.split(task, name))
    # Raw test rows let a champion trained on another transform be re-scored on today's test split.
    write_parquet_atomic(splits["test"].reset_index(drop=True), p.raw_split(task, "test"))
    transform.to_json(p.transform(task))
    sizes = {name: len(frame) for name, frame in splits.items()}
    log.info("preprocess %s: %s, %d features", task, sizes, len(transform.feature_names))
    return sizes


def load_split(p: Paths, task: str, split: str) -> tuple[Any, Any, dict[str, Any]]:
    """(X float32 (N, F), y int64 (N,), {attr: group labels}) of one processed split."""
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(p.split(task, split))
    groups = {
        c[len(GROUP_PREFIX) :]: frame[c].to_numpy() for c in frame.columns if c.startswith(GROUP_PREFIX)
    }
    features = [c for c in frame.columns if c != LABEL and not c.startswith(GROUP_PREFIX)]
    x = frame[features].to_numpy(dtype=np.float32)
    y = frame[LABEL].to_numpy(dtype=np.int64)
    return x, y, groups


# ---------------------------------------------------------------------------------------------- train
def train(pair: str, root: Path | None = None, max_epochs: int | None = None) -> dict[str, Any]:
    """Train one (task, family) pair; write models/<pair>/model.pt and its history; log to MLflow."""
    import torch

    from dlops import tracking
    from dlops.data.preprocess import TabularTransform, augment_batch
    from dlops.models.registry import build_model
    from dlops.training.checkpoint import file_sha256, model_checkpoint, save_atomic
    from dlops.training.loop import seed_everything, select_device
    from dlops.training.loop import train as fit

    params, p = _context(root)
    entry = params.pair(pair)
    task_cfg = params.task(entry.task)
    transform = TabularTransform.from_json(p.transform(entry.task))
    data = {split: load_split(p, entry.task, split)[:2] for split in ("train", "val")}
    num_classes = len(transform.classes)
    input_dim = data["train"][0].shape[1]
    seed_everything(entry.train.seed)
    model = build_model(entry.family, input_dim=input_dim, num_classes=num_classes, config=entry.model)

    augment_cfg = task_cfg.preprocess.augment
    augment = None
    if augment_cfg.noise_std > 0 or augment_cfg.mixup_alpha > 0:

        def augment(
            x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return augment_batch(x, y, num_classes, augment_cfg, gen)

    digest = params_hash(
        {
            "model": entry.model_dump(mode="json"),
            "augment": augment_cfg.model_dump(mode="json"),
            "data": file_sha256(p.split(entry.task, "train")) + file_sha256(p.split(entry.task, "val")),
        }
    )
    tracking.configure(p.root, params.mlflow)
    tags = tracking.lineage_tags(p.root, entry.task, digest)
    tags["host.device"] = str(select_device(entry.train.device))
    run_params = {
        "task": entry.task,
        "family": entry.family,
        "model": entry.model,
        "train": entry.train.model_dump(mode="json"),
        "augment": augment_cfg.model_dump(mode="json"),
    }
    with tracking.training_run(pair, entry.task, entry.family, run_params, tags) as run:
        result = fit(
            model,
            data,
            entry.train,
            augment=augment,
            logger=run,
            resume_path=p.resume_checkpoint(pair),
            fingerprint=digest,
            max_epochs=max_epochs,
        )
        finished = result.history and (len(result.history) >= entry.train.epochs or result.stopped_early)
        if not finished:
            raise InterruptedError(f"train {pair}: stopped after {len(result.history)} epochs (max_epochs)")
        ckpt = model_checkpoint(
            model=result.model,
            pair=pair,
            task=entry.task,
            family=entry.family,
            model_config=entry.model,
            input_dim=input_dim,
            classes=list(transform.classes),
            train_config=entry.train.model_dump(mode="json"),
            best_epoch=result.best_epoch,
        )
        save_atomic(ckpt, p.checkpoint(pair))
        write_json(p.history(pair), result.history_dict())
        sha = file_sha256(p.checkpoint(pair))
        run.set_tags(
            {
                "dlops.model_sha256": sha,
                "train.best_epoch": str(result.best_epoch),
                "train.resumed_from_epoch": str(result.resumed_from_epoch),
            }
        )
    p.resume_checkpoint(pair).unlink(missing_ok=True)
    return {"best_epoch": result.best_epoch, "epochs": len(result.history), "model_sha256": sha}


# ------------------------------------------------------------------------------------------- evaluate
def evaluate(pair: str, root: Path | None = None) -> dict[str, Any]:
    """Metrics on every split, fairness on test, overfitting diagnosis, plots; JSON for DVC, all to MLflow."""
    from dlops import tracking
    from dlops.evaluation import fairness, metrics, overfitting, plots
    from dlops.training.checkpoint import file_sha256, load_model
    from dlops.training.loop import predict_proba

    params, p = _context(root)
    entry = params.pair(pair)
    model, meta = load_model(p.checkpoint(pair))
    classes = list(meta["classes"])
    out = p.eval_dir(pair)
    out.mkdir(parents=True, exist_ok=True)

    scores: dict[str, Any] = {}
    test: dict[str, Any] = {}
    for split in SPLITS:
        x, y, groups = load_split(p, entry.task, split)
        proba = predict_proba(model, x)
        scores.update(metrics.classification_metrics(y, proba, classes, prefix=split))
        if split == "test":
            test = {"y": y, "proba": proba, "groups": groups}
    y_pred = test["proba"].argmax(axis=1)
    fair_metrics, fair_tables = fairness.fairness_report(test["y"], y_pred, test["groups"])
    scores.update(fair_metrics)
    history = json.loads(p.history(pair).read_text())
    scores.update(
        overfitting.diagnose(history, scores, entry.gates.primary_metric, entry.gates.max_overfit_gap)
    )

    write_json(p.eval_metrics(pair), scores)
    write_json(out / "fairness.json", fair_tables)
    write_json(out / "confusion.json", metrics.confusion(test["y"], y_pred, classes))
    plots.write_plot_data(out, test["y"], test["proba"], classes, history)
    plots.write_plots(out / "figures", test["y"], test["proba"], classes, history, fair_tables)

    tracking.configure(p.root, params.mlflow)
    run_id = tracking.find_run(pair, file_sha256(p.checkpoint(pair)))
    if run_id is None:
        log.warning("evaluate %s: no MLflow training run carries this model; metrics stay in %s", pair, out)
    else:
        tracking.log_evaluation(run_id, scores, out)
    return scores


# ------------------------------------------------------------------------------------------- register
def register(pair: str, root: Path | None = None) -> dict[str, Any]:
    """Register the candidate with its gates; promote to @champion only if every gate passes and it is
    not worse than the current champion on the same test split. Raises GateFailure when a gate fails."""
    import pandas as pd

    from dlops import tracking
    from dlops.gates import GateFailure
    from dlops.training.checkpoint import file_sha256

    params, p = _context(root)
    entry = params.pair(pair)
    task_cfg = params.task(entry.task)
    scores = json.loads(p.eval_metrics(pair).read_text())
    sha = file_sha256(p.checkpoint(pair))
    tracking.configure(p.root, params.mlflow)
    run_id = tracking.find_run(pair, sha)
    if run_id is None:
        raise RuntimeError(
            f"register {pair}: no MLflow run carries model {sha[:12]} (was the tracking store reset?); "
            f"rerun training with `dvc repro -f -s train@{pair}`"
        )
    raw_test = pd.read_parquet(p.raw_split(entry.task, "test"))
    example = raw_test.drop(columns=[task_cfg.columns.target]).head(20)
    primary = entry.gates.primary_metric

    def score_champion(model_uri: str) -> float:
        return _score_model_uri(model_uri, raw_test, task_cfg.columns.target, primary)

    report = tracking.register(
        pair=pair,
        run_id=run_id,
        model_sha256=sha,
        metrics=scores,
        gates=entry.gates,
        cfg=params.mlflow,
        artifacts={"checkpoint": p.checkpoint(pair), "transform": p.transform(entry.task)},
        raw_example=example,
        model_card=_model_card(pair, entry, scores),
        extra_tags={
            "data.test_split": file_sha256(p.split(entry.task, "test")),
            "params.hash": params_hash(entry),
        },
        score_champion=score_champion,
    )
    if not all(check["passed"] for check in report["checks"]):
        from dlops.gates import Decision

        raise GateFailure(Decision.from_dict(report))
    return report


def _score_model_uri(model_uri: str, raw_test: Any, target: str, primary: str) -> float:
    """The primary metric of a registered model scored on today's raw test rows."""
    import mlflow
    import numpy as np

    from dlops.evaluation.metrics import classification_metrics

    model = mlflow.pyfunc.load_model(model_uri)
    out = model.predict(raw_test.drop(columns=[target]))
    classes = [c[len("proba_") :] for c in out.columns if c.startswith("proba_")]
    index = {name: i for i, name in enumerate(classes)}
    y = np.array([index.get(str(v), -1) for v in raw_test[target]])
    keep = y >= 0
    proba = out[[f"proba_{c}" for c in classes]].to_numpy()[keep]
    return float(classification_metrics(y[keep], proba, classes, prefix="test")[f"test/{primary}"])


def _model_card(pair: str, entry: Any, scores: dict[str, Any]) -> str:
    keys = [
        f"test/{entry.gates.primary_metric}",
        "test/accuracy",
        "test/roc_auc",
        "test/ece",
        "fairness/max/demographic_parity_difference",
        "fairness/max/equalized_odds_difference",
        "overfit/primary_gap_train_test",
        "overfit/diagnosis",
    ]
    rows = "\n".join(f"| {k} | {scores.get(k)} |" for k in keys if k in scores)
    return (
        f"## {pair}\n\nFamily `{entry.family}` on task `{entry.task}`; model config `{entry.model}`.\n"
        f"Trained with AdamW (lr {entry.train.lr}, weight decay {entry.train.weight_decay}, "
        f"up to {entry.train.epochs} epochs, early stopping patience {entry.train.patience}).\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n"
    )


def champion(pair: str, root: Path | None = None) -> dict[str, Any] | None:
    """The registered @champion of a pair (version, run id, decision tags), or None."""
    from dlops import tracking

    params, p = _context(root)
    params.pair(pair)
    tracking.configure(p.root, params.mlflow)
    return tracking.champion_info(pair, params.mlflow)
