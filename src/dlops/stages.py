"""One function per DVC stage: params and paths in, files out. Shared by the CLI and the Prefect flow.

Every function reads params through `load_params()` (the only reader of params.yaml), writes its
outputs atomically, and raises a specific error naming the file, column or key when an input is bad.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlops.config import ConfigError, Params, Paths, TaskConfig, load_params, params_hash, paths
from dlops.evaluation.report import write_json
from dlops.kinds import kind_of
from dlops.kinds.base import Kind

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _context(root: Path | None = None) -> tuple[Params, Paths]:
    p = paths(root)
    return load_params(p.params), p


class OutputError(OSError):
    """A stage's output folder cannot be written; raised before the stage does any work."""


def _writable(p: Paths, *folders: Path) -> None:
    """Stop before any work when another pipeline run holds the workspace, or when an output folder
    cannot be written (read-only, a file in the way, no permission): a stage that failed at its last
    write would have spent its run for nothing."""
    from dlops.workspace import ensure_free

    ensure_free(p.root)
    for folder in folders:
        where = folder.relative_to(p.root) if folder.is_relative_to(p.root) else folder
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{where}: output folder is a file; move it away (nothing was written)")
        probe = folder / f".dlops-write-probe.{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.touch()
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            message = f"{where}: output folder is not writable ({reason}); nothing was written"
            raise OutputError(message) from None


# ---------------------------------------------------------------------------------------------- ingest
def ingest(task: str, root: Path | None = None) -> Path:
    """Load the task's source (built-in generator or a real table) into data/raw/<task>.parquet."""
    params, p = _context(root)
    task_cfg = params.task(task)
    _writable(p, p.raw(task).parent)
    frame = _write_raw(task, task_cfg, p)
    _ensure_suite(task, task_cfg, p, frame)
    return p.raw(task)


def _write_raw(task: str, task_cfg: TaskConfig, p: Paths) -> Any:
    """The source's rows, then every accepted batch of the task (data/batches/<task>.json), in order."""
    import pandas as pd

    from dlops.data.batches import accepted_frames
    from dlops.data.files import write_parquet_atomic

    frame = kind_of(task_cfg).load(task_cfg, p.root)
    if batches := accepted_frames(p, task):
        frame = pd.concat([frame, *batches], ignore_index=True)
    write_parquet_atomic(frame, p.raw(task))
    log.info(
        "ingest %s: %d rows x %d columns (%d accepted batches) -> %s",
        task,
        len(frame),
        frame.shape[1],
        len(batches),
        p.raw(task),
    )
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
    from dlops.data.validation import save_suite

    save_suite(_draft(task, task_cfg, frame), suite_path)
    log.warning(
        "ingest %s: drafted %s from this table; review it and commit it with the code", task, suite_path
    )


# -------------------------------------------------------------------------------------------- validate
def validate(task: str, root: Path | None = None) -> dict[str, Any]:
    """Check data/raw/<task>.parquet against the task's committed suite; raise on a critical failure."""
    import pandas as pd

    from dlops.data.validation import load_suite, raise_on_failure

    params, p = _context(root)
    task_cfg = params.task(task)
    _writable(p, p.validation_report(task).parent)
    suite_path = p.suite(task_cfg)
    if not suite_path.is_file():
        raise FileNotFoundError(
            f"{suite_path}: no expectation suite for task {task!r}; "
            f"draft one with `dlops expectations init {task}`"
        )
    raw = pd.read_parquet(p.raw(task))
    summary = kind_of(task_cfg).validate(raw, load_suite(suite_path), task_cfg, p.data_docs(task))
    write_json(p.validation_report(task), summary)
    raise_on_failure(summary, source=str(p.raw(task).relative_to(p.root)))
    return summary


def draft_expectations(task: str, root: Path | None = None, force: bool = False) -> Path:
    """Profile the task's raw table into a draft suite at the path params name (`dlops expectations init`)."""
    import pandas as pd

    from dlops.data.validation import save_suite

    params, p = _context(root)
    task_cfg = params.task(task)
    suite_path = p.suite(task_cfg)
    if suite_path.exists() and not force:
        raise FileExistsError(f"{suite_path} exists; pass --force to overwrite it")
    raw = p.raw(task)
    frame = pd.read_parquet(raw) if raw.exists() else _write_raw(task, task_cfg, p)
    save_suite(_draft(task, task_cfg, frame), suite_path)
    return suite_path


def _draft(task: str, task_cfg: TaskConfig, frame: Any) -> dict[str, Any]:

    return kind_of(task_cfg).draft_suite(task, task_cfg, frame)


# ------------------------------------------------------------------------------------------ preprocess
def preprocess(task: str, root: Path | None = None) -> dict[str, int]:
    """Split (seeded; copies and batches kept apart as the kind does it), fit the transform on train
    only; write the splits and transform.json under data/processed/<task>."""
    import pandas as pd

    from dlops.data.batches import blocks

    params, p = _context(root)
    task_cfg = params.task(task)
    _writable(p, p.processed(task))
    raw = pd.read_parquet(p.raw(task))
    parts = blocks(p, task, len(raw))  # the source's rows, then each accepted batch
    return kind_of(task_cfg).preprocess(task, task_cfg, raw, p, parts)


# ---------------------------------------------------------------------------------------------- train
def train(pair: str, root: Path | None = None, max_epochs: int | None = None) -> dict[str, Any]:
    """Train one (task, family) pair; write models/<pair>/model.pt and its history; log to MLflow.

    Under `torchrun` every process trains its shard; only rank 0 logs, warm-starts and writes files."""
    from dlops.training import distributed
    from dlops.training.device import select_device

    params, p = _context(root)
    entry = params.pair(pair)
    _writable(p, p.model_dir(pair), p.history(pair).parent, p.resume_checkpoint(pair).parent)
    device = select_device(entry.train.device)
    with distributed.session(device) as world:
        if world.is_main:
            return _train_and_record(pair, params, p, device, world.size, max_epochs)
        _train_replica(pair, params, p, max_epochs)
        return {"rank": world.rank}


@dataclass
class _PairSetup:
    """The model, data and settings of one pair, the same on every rank."""

    entry: Any
    classes: list[str]
    input_shape: tuple[int, ...]
    model_config: dict[str, Any]
    model: Any
    fingerprint: str
    fit_args: dict[str, Any]  # train()'s keyword arguments


def _train_setup(pair: str, params: Params, p: Paths) -> _PairSetup:
    from dlops.training.checkpoint import file_sha256

    entry = searched_entry(pair, params, p)
    task_cfg = params.task(entry.task)
    kind = kind_of(task_cfg)
    classes, input_shape = task_classes_and_shape(p, kind, entry.task)
    model, model_config = _seeded_model(p, kind, entry, classes, input_shape)
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
        "sample_weights": _reweigh(p, kind, entry),
        "augment": kind.batch_augment(task_cfg, len(classes)) if entry.train.augment else None,
        "resume_path": p.resume_checkpoint(pair),
        "fingerprint": fingerprint,
    }
    return _PairSetup(entry, classes, input_shape, model_config, model, fingerprint, fit_args)


def _seeded_model(
    p: Paths, kind: Kind, entry: Any, classes: list[str], input_shape: tuple[int, ...]
) -> tuple[Any, Any]:
    """(the entry's model, its config): built after seeding with `train.seed`, so a training run and a
    search trial of the same settings start from the same weights."""
    from dlops.models.registry import build_model
    from dlops.training.loop import seed_everything

    seed_everything(entry.train.seed)
    model_config = kind.model_config(json.loads(p.transform(entry.task).read_text()), entry.model)
    model = build_model(entry.family, input_shape=input_shape, num_classes=len(classes), config=model_config)
    return model, model_config


def _train_replica(pair: str, params: Params, p: Paths, max_epochs: int | None) -> None:
    """A torchrun rank other than 0: the same training on its shard, nothing logged or written."""
    from dlops.training.loop import train as fit

    setup = _train_setup(pair, params, p)
    fit(setup.model, **setup.fit_args, max_epochs=max_epochs)


def _train_and_record(
    pair: str, params: Params, p: Paths, device: Any, world_size: int, max_epochs: int | None
) -> dict[str, Any]:
    from dlops import tracking
    from dlops.training.checkpoint import file_sha256, model_checkpoint, save_atomic
    from dlops.training.loop import train as fit

    setup = _train_setup(pair, params, p)
    entry, model = setup.entry, setup.model
    tracking.configure(p.root, params.mlflow)
    tags = tracking.lineage_tags(p.root, entry.task, setup.fingerprint)
    tags["host.device"] = str(device)
    tags["train.world_size"] = str(world_size)
    if params.pair(pair).search is not None:  # trained with a study's best values: which, and how good
        found = json.loads(p.search_result(pair).read_text())
        tags.update({"search.study": found["study"], "search.best_trial": str(found["best"]["trial"])})
        tags.update(
            {
                "search.best_value": str(found["best"]["value"]),
                "search.improvement": str(found["improvement"]),
            }
        )
    init_from = None
    if entry.train.init_from is not None:
        warm_tags, init_from = _warm_start(model, pair, entry, params, p, setup.fingerprint)
        tags.update(warm_tags)
    run_params = {
        "task": entry.task,
        "family": entry.family,
        "model": entry.model,
        "train": entry.train.model_dump(mode="json"),
        "augment": params.task(entry.task).augment.model_dump(mode="json"),
    }
    with tracking.training_run(pair, entry.task, entry.family, run_params, tags) as run:
        result = fit(model, **setup.fit_args, logger=run, max_epochs=max_epochs)
        finished = result.history and (len(result.history) >= entry.train.epochs or result.stopped_early)
        if not finished:
            raise InterruptedError(f"train {pair}: stopped after {len(result.history)} epochs (max_epochs)")
        ckpt = model_checkpoint(
            model=result.model,
            pair=pair,
            task=entry.task,
            family=entry.family,
            model_config=setup.model_config,
            input_shape=setup.input_shape,
            classes=setup.classes,
            train_config=entry.train.model_dump(mode="json"),
            best_epoch=result.best_epoch,
            init_from=init_from,
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
    _warm_start_record(p, pair).unlink(missing_ok=True)
    return {"best_epoch": result.best_epoch, "epochs": len(result.history), "model_sha256": sha}


def _warm_start(
    model: Any, pair: str, entry: Any, params: Params, p: Paths, fingerprint: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """`train.init_from`: initialise the freshly built `model` from its parent (training/transfer.py);
    returns the training run's lineage tags and the checkpoint's `init_from`.

    Resuming an interrupted run wins: its last.pt holds weights that already descend from the parent
    recorded when it started (.dlops/checkpoints/<pair>/init_from.json), so that record is returned and
    nothing is downloaded. Errors reaching the tracking store propagate.
    """
    import tempfile

    from dlops.training import transfer

    record = _warm_start_record(p, pair)
    if _resumable(p.resume_checkpoint(pair), fingerprint):
        saved = json.loads(record.read_text()) if record.is_file() else {}
        if saved.get("fingerprint") == fingerprint:
            log.info("train %s: resuming, from weights warm-started by %s", pair, saved["tags"]["init_from"])
            return saved["tags"], saved["init_from"]
        log.warning("train %s: resuming a run whose warm start was not recorded", pair)
        return {"init_from": "unknown (resumed run)"}, {"uri": None, "note": "resumed run, parent unknown"}

    with tempfile.TemporaryDirectory(prefix="dlops-init-from-") as tmp:
        tags, meta = transfer.warm_start(
            model,
            pair=pair,
            family=entry.family,
            train=entry.train,
            mlflow_cfg=params.mlflow,
            root=p.root,
            dst=Path(tmp),
        )
    write_json(record, {"fingerprint": fingerprint, "tags": tags, "init_from": meta})
    return tags, meta


def _warm_start_record(p: Paths, pair: str) -> Path:
    """Which parent a warm start used, kept beside last.pt while the run may still be resumed."""
    return p.resume_checkpoint(pair).with_name("init_from.json")


def _resumable(path: Path, fingerprint: str) -> bool:
    """Whether the loop will resume from `path` (a readable resume checkpoint of these params and data)."""
    from dlops.training.checkpoint import CheckpointError, load_safe

    if not path.is_file():
        return False
    try:
        ckpt = load_safe(path)
    except CheckpointError:
        return False
    return ckpt.get("kind") == "resume" and ckpt.get("fingerprint") == fingerprint


def task_classes_and_shape(p: Paths, kind: Kind, task: str) -> tuple[list[str], tuple[int, ...]]:
    """Class names and the shape of one model input, from the task's transform.json."""
    return kind.classes_and_shape(json.loads(p.transform(task).read_text()))


def training_data(p: Paths, kind: Kind, entry: Any, split: str) -> tuple[Any, Any]:
    """(x, y) of a split as a family trains on it: anomaly models see only their `normal_classes`."""
    x, y, _ = kind.load_split(p, entry.task, split)
    normal = entry.model.get("normal_classes")
    if normal is not None:
        import numpy as np

        keep = np.isin(y, normal)
        x, y = x[keep], y[keep]
    return x, y


def _reweigh(p: Paths, kind: Kind, entry: Any) -> Any:
    """Kamiran-Calders weights of the training rows when `train.reweigh` names attributes, else None."""
    if not entry.train.reweigh:
        return None
    from dlops.mitigation import joint_groups, reweigh_weights

    _, y, groups = kind.load_split(p, entry.task, "train")
    weights = reweigh_weights(y, joint_groups(groups, entry.train.reweigh))
    log.info("train: reweighing by %s, weights %.3f..%.3f", entry.train.reweigh, weights.min(), weights.max())
    return weights


# --------------------------------------------------------------------------------------------- search
def search(pair: str, root: Path | None = None, join: bool = False, worker: int = 0) -> dict[str, Any]:
    """Stage `search`: an Optuna study over `models.<pair>.search` on the train/val splits; writes the
    best values to reports/search/<pair>.json, which `train` reads. A pair whose search is null gets
    `{"search": null}` (train keeps params.yaml's values). `join`: only run trials of the study another
    `dlops search` started (another process or machine on the same storage); writes nothing."""
    import subprocess
    import sys

    from dlops import search as study_lib
    from dlops import tracking

    params, p = _context(root)
    entry = params.pair(pair)
    out = p.search_result(pair)
    if entry.search is None:
        if join:
            raise ConfigError(f"models.{pair}.search is null: there is no study to join")
        _writable(p, out.parent)
        write_json(out, {"pair": pair, "search": None})
        return {"search": None}
    if not join:
        _writable(p, out.parent)
    search_cfg = entry.search
    name = study_lib.study_name(
        pair, entry, _augment_section(params, entry), _search_inputs(p, params, entry)
    )
    url = study_lib.storage_url(search_cfg, p.search_storage())
    study = study_lib.open_study(name, url, search_cfg, worker, create=not join)
    tracking.configure(p.root, params.mlflow)
    run_params = {"search": search_cfg.model_dump(mode="json", exclude={"storage"}), "model": entry.model}
    run_params["train"] = entry.train.model_dump(mode="json")
    tags = tracking.lineage_tags(p.root, entry.task, name)
    parent = tracking.search_parent_run(pair, name, run_params, tags, create=not join)
    trainer = study_lib.Trainer(_trial_fit(pair, params, p), tracking.training_run, parent, pair, worker)
    _share_cores(search_cfg.workers)
    helpers: list[subprocess.Popen[bytes]] = []
    if not join:
        study_lib.prepare(study, entry)
        command = [sys.executable, "-m", "dlops", "search", pair, "--join", "--root", str(p.root)]
        helpers = [subprocess.Popen([*command, "--worker", str(i)]) for i in range(1, search_cfg.workers)]
    try:
        study_lib.optimize(study, search_cfg, study_lib.make_objective(entry, trainer))
    except BaseException:
        for helper in helpers:  # their trials would count for nothing: this search has failed
            helper.terminate()
        raise
    finally:
        failed = [h.args for h in helpers if h.wait() != 0]
    if failed:
        raise RuntimeError(f"search {pair}: {len(failed)} worker process(es) failed; see their output above")
    if join:
        return {"study": name, "joined": True, "trials": study_lib.trials_done(study)}
    result = {"pair": pair, "search": search_cfg.model_dump(mode="json", exclude={"storage"})}
    result.update(study_lib.summary(study, entry, name))
    _record_search(study, result, parent)
    write_json(out, result)
    return {k: result[k] for k in ("study", "trials", "best", "default", "improvement")}


def _record_search(study: Any, result: dict[str, Any], parent_run_id: str) -> None:
    """The study's summary, plots and trials table on the parent MLflow run."""
    import tempfile

    from dlops import search as study_lib
    from dlops import tracking

    metrics = {"search/best_value": result["best"]["value"], "search/trials": result["trials"]["total"]}
    if result["default"]["value"] is not None:
        metrics["search/default_value"] = result["default"]["value"]
        metrics["search/improvement"] = result["improvement"]
    metrics.update({f"importance/{k}": v for k, v in study_lib.importances(study).items()})
    tags = {f"best.{k}": json.dumps(v) for k, v in result["best"]["params"].items()}
    tags.update({f"search.{k}": str(v) for k, v in result["trials"].items()})
    tags["search.best_trial"] = str(result["best"]["trial"])
    with tempfile.TemporaryDirectory(prefix="dlops-search-") as tmp:
        study_lib.write_figures(study, Path(tmp))
        write_json(Path(tmp) / "best_params.json", result)
        tracking.finish_search_run(parent_run_id, metrics, tags, Path(tmp))


def _trial_fit(pair: str, params: Params, p: Paths) -> Any:
    """fit(entry, logger) for search trials: the train/val data, weights and augmentation loaded once,
    a model built and seeded for each trial's settings as `train` builds it; no resume file."""
    from dlops.training.loop import train as loop_train

    base = params.pair(pair)
    task_cfg = params.task(base.task)
    kind = kind_of(task_cfg)
    classes, input_shape = task_classes_and_shape(p, kind, base.task)
    data = {split: training_data(p, kind, base, split) for split in ("train", "val")}
    weights = _reweigh(p, kind, base)
    parent = _search_parent(pair, base, params, p)

    def fit(entry: Any, logger: Any) -> Any:
        from dlops.training import transfer

        model, _ = _seeded_model(p, kind, entry, classes, input_shape)
        if parent is not None:  # every trial starts from the parent `train` will start from
            transfer.transfer_weights(model, entry.family, parent, f"models.{pair}.train.init_from")
        augment = kind.batch_augment(task_cfg, len(classes)) if entry.train.augment else None
        return loop_train(model, data, entry.train, sample_weights=weights, augment=augment, logger=logger)

    return fit


def _search_parent(pair: str, entry: Any, params: Params, p: Paths) -> Any:
    """The parent of a fine-tuning search (`train.init_from`: a pinned version or a file), loaded once."""
    import tempfile

    from dlops.training import transfer

    if entry.train.init_from is None:
        return None
    with tempfile.TemporaryDirectory(prefix="dlops-search-parent-") as tmp:
        return transfer.fetch_parent(
            entry.train.init_from, pair=pair, mlflow_cfg=params.mlflow, root=p.root, dst=Path(tmp)
        )


def _share_cores(workers: int) -> None:
    """Several trial processes on one CPU split its cores instead of each taking all of them."""
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _augment_section(params: Params, entry: Any) -> dict[str, Any]:
    return dict(params.task(entry.task).augment.model_dump(mode="json"))


def _search_inputs(p: Paths, params: Params, entry: Any) -> str:
    """The files a study's trials read: the train/val splits, and a checkpoint file they start from."""
    from dlops.training.checkpoint import file_sha256

    kind = kind_of(params.task(entry.task))
    files = [kind.split_file(p, entry.task, split) for split in ("train", "val")]
    init_from = entry.train.init_from
    if init_from is not None and not init_from.startswith("models:/") and (p.root / init_from).is_file():
        files.append(p.root / init_from)  # a registered version is immutable: its URI is in train
    return "".join(file_sha256(path) for path in files)


def searched_entry(pair: str, params: Params, p: Paths) -> Any:
    """The pair's entry as `train` uses it: params.yaml's, with the best values of its search when the
    search is on. The result must come from a study of these very params and data (its study name says
    so); a stale or missing one stops training, naming the command that refreshes it."""
    from dlops import search as study_lib

    entry = params.pair(pair)
    if entry.search is None:
        return entry
    path = p.search_result(pair)
    inputs = _search_inputs(p, params, entry)
    expected = study_lib.study_name(pair, entry, _augment_section(params, entry), inputs)
    result = json.loads(path.read_text()) if path.is_file() else None
    found = None if result is None else result.get("study")
    if result is None or found != expected:
        why = "is missing" if result is None else f"is from study {found!r}, not {expected!r}"
        raise ConfigError(
            f"models.{pair}.search is on but {path.relative_to(p.root)} {why}: run `dlops search {pair}` "
            "(dvc repro runs it before train)"
        )
    best = result["best"]["params"]
    log.info("train %s: the best values of search %s: %s", pair, found, best)
    return study_lib.apply(entry, best)


# ------------------------------------------------------------------------------------------- evaluate
def evaluate(pair: str, root: Path | None = None) -> dict[str, Any]:
    """Metrics on every split, fairness/bias on test, overfitting diagnosis, plots, by the family's kind
    (classifier, anomaly detector, generator); JSON for DVC, everything to MLflow."""
    from dlops import tracking
    from dlops.models.registry import family_kinds
    from dlops.training.checkpoint import file_sha256, load_model

    params, p = _context(root)
    entry = params.pair(pair)
    _writable(p, p.eval_dir(pair))
    model, meta = load_model(p.checkpoint(pair))
    classes = [str(c) for c in meta["classes"]]
    out = p.eval_dir(pair)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    history = json.loads(p.history(pair).read_text())
    kinds = family_kinds(entry.family)
    kind = kind_of(params.task(entry.task))
    splits = {split: kind.load_split(p, entry.task, split) for split in SPLITS}

    if "classifier" in kinds:
        scores = _evaluate_classifier(model, p, kind, entry, splits, classes, history, out)
    else:
        from dlops.evaluation import families

        scores = families.evaluate_non_classifier(model, kinds, entry, splits, classes, history, out)
    write_json(p.eval_metrics(pair), scores)

    tracking.configure(p.root, params.mlflow)
    run_id = tracking.find_run(pair, file_sha256(p.checkpoint(pair)))
    if run_id is None:
        log.warning("evaluate %s: no MLflow training run carries this model; metrics stay in %s", pair, out)
    else:
        tracking.log_evaluation(run_id, scores, out)
    return scores


def _evaluate_classifier(
    model: Any,
    p: Paths,
    kind: Kind,
    entry: Any,
    splits: dict[str, Any],
    classes: list[str],
    history: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    from dlops.evaluation.classifiers import evaluate_classifier
    from dlops.training.loop import predict_proba

    scores, test = evaluate_classifier(
        lambda x: predict_proba(model, x), entry, splits, classes, history, out
    )
    scores.update(kind.evaluate_classifier(model, p, entry, classes, test, out))
    return scores


# ---------------------------------------------------------------------------------------- pretraining
def pretraining(name: str, root: Path | None = None) -> dict[str, Any]:
    """Stage `pretraining`: a CNN on `label_fraction` of the labels, from scratch and from the encoder of
    an autoencoder or VAE (evaluation/pretraining.py); writes reports/pretraining/<name>.json and logs
    one MLflow run `pretraining:<name>` with both arms."""
    import tempfile

    from dlops import tracking
    from dlops.evaluation import pretraining as study_lib
    from dlops.training.checkpoint import file_sha256, load_safe

    params, p = _context(root)
    if name not in params.pretraining:
        raise ConfigError(f"pretraining: unknown study {name!r}; known: {sorted(params.pretraining)}")
    study = params.pretraining[name]
    out = p.pretraining_report(name)
    _writable(p, out.parent)
    classifier, encoder_entry = params.pair(study.classifier), params.pair(study.encoder)
    kind = kind_of(params.task(study.task))
    classes, input_shape = task_classes_and_shape(p, kind, study.task)
    data = {}
    for split in SPLITS:
        x, y, _ = kind.load_split(p, study.task, split)
        data[split] = (x, y)
    encoder_file = p.checkpoint(study.encoder)
    if study.encoder_data == "all":  # self-supervised: every training image, labels unused
        encoder = study_lib.train_encoder(
            encoder_entry.family, encoder_entry.model, encoder_entry.train, data, len(classes), input_shape
        )
        source = {"trained_on_classes": "all", "trained_here": True, "best_epoch": encoder["best_epoch"]}
    else:
        encoder = load_safe(encoder_file)
        source = {  # what the encoder learned from: an anomaly model sees only its normal classes
            "trained_on_classes": encoder_entry.model.get("normal_classes") or "all",
            "file": str(encoder_file.relative_to(p.root)),
            "sha256": file_sha256(encoder_file),
        }
    task_cfg = params.task(study.task)
    augment = kind.batch_augment(task_cfg, len(classes)) if classifier.train.augment else None
    report = study_lib.run_study(
        study,
        cnn_config=dict(classifier.model),
        train=classifier.train,
        encoder=encoder,
        data=data,
        num_classes=len(classes),
        input_shape=input_shape,
        augment=augment,
    )
    report = {
        "study": name,
        "task": study.task,
        "classifier": study.classifier,
        "encoder": {
            "model": study.encoder,
            "family": encoder["family"],
            "data": study.encoder_data,
            **source,
        },
        **report,
    }
    write_json(out, report)
    settings = {"study": study.model_dump(mode="json"), "train": classifier.train.model_dump(mode="json")}
    settings["encoder"] = {"model": encoder_entry.model, "train": encoder_entry.train.model_dump(mode="json")}
    digest = params_hash({**settings, "model": classifier.model})
    tracking.configure(p.root, params.mlflow)
    tags = {**tracking.lineage_tags(p.root, study.task, digest), "dlops.study": name}
    if "sha256" in report["encoder"]:
        tags["pretraining.encoder_sha256"] = report["encoder"]["sha256"]
    with tempfile.TemporaryDirectory(prefix="dlops-pretraining-") as tmp:
        figure = study_lib.plot_study(Path(tmp) / f"{name}.png", report, name)
        tracking.log_report_run(
            f"pretraining:{name}",
            tags,
            study_lib.study_metrics(report),
            {"pretraining.json": json.dumps(report, indent=2, sort_keys=True, default=str)},
            params={**settings, "model": classifier.model},
            files=[figure],
        )
    return report


# ------------------------------------------------------------------------------------------- register
def register(pair: str, root: Path | None = None) -> dict[str, Any]:
    """Register the candidate with its gates, compare it with the champion on the same test rows, and
    promote it to @champion only as the policy in params allows. Raises GateFailure when a gate fails."""
    from dlops import tracking
    from dlops.gates import GateFailure
    from dlops.model_card import build_card
    from dlops.serving_plan import serving_plan
    from dlops.training.checkpoint import file_sha256, load_safe

    params, p = _context(root)
    entry = params.pair(pair)
    _writable(p, p.register_report(pair).parent)
    task_cfg = params.task(entry.task)
    scores = json.loads(p.eval_metrics(pair).read_text())
    load_safe(p.checkpoint(pair))  # a corrupt file is named as such, not as "no run carries this sha"
    sha = file_sha256(p.checkpoint(pair))
    tracking.configure(p.root, params.mlflow)
    run_id = tracking.find_run(pair, sha)
    if run_id is None:
        raise RuntimeError(
            f"register {pair}: no MLflow run carries model {sha[:12]} (was the tracking store reset?); "
            f"rerun training with `dvc repro -f -s train@{pair}`"
        )
    served = serving_plan(p, entry, task_cfg, pair, scores)
    extra_tags = {
        "data.test_split": file_sha256(kind_of(task_cfg).split_file(p, entry.task, "test")),
        "params.hash": params_hash(entry),
    }
    flat_params = tracking.flatten_params(
        {
            "model": entry.model,
            "train": entry.train.model_dump(mode="json"),
            "gates": entry.gates.model_dump(),
        }
    )

    def card(report: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        return build_card(
            pair=pair,
            entry=entry,
            report=report,
            tags=tags,  # the lineage recorded at training time, not today's checkout
            scores=scores,
            eval_dir=p.eval_dir(pair),
            validation_summary=p.validation_report(entry.task),
            params=flat_params,
        )

    report = tracking.register(
        pair=pair,
        run_id=run_id,
        model_sha256=sha,
        metrics=scores,
        gates=entry.gates,
        cfg=params.mlflow,
        artifacts=served.artifacts,
        raw_example=served.example,
        extra_tags=extra_tags,
        score_champion=served.score_champion,
        serving=served.kind,
        paired=served.paired,
        card=card,
    )
    receipt = p.register_report(pair)
    if not all(check["passed"] for check in report["checks"]):
        from dlops.gates import Decision

        receipt.unlink(missing_ok=True)
        raise GateFailure(Decision.from_dict(report))
    # The stage's DVC output: a receipt kept in the DVC cache, not in git, so a fresh clone (whose
    # MLflow store is empty) registers again instead of finding `register` up to date. Only what is
    # the same in any store goes in it (not the verdict, which depends on the champion there), so two
    # runners and two clones write the same dvc.lock.
    write_json(receipt, {"model_name": report["model_name"], "model_sha256": sha, "gates_passed": True})
    return report


def champion(pair: str, root: Path | None = None) -> dict[str, Any] | None:
    """The registered @champion of a pair (version, run id, decision tags), or None."""
    from dlops import tracking

    params, p = _context(root)
    params.pair(pair)
    tracking.configure(p.root, params.mlflow)
    return tracking.champion_info(pair, params.mlflow)


# ----------------------------------------------------------------------------------- human decisions
def promote(pair: str, version: str, override: bool, reason: str, root: Path | None = None) -> dict[str, Any]:
    """`dlops promote`: a person makes a version @champion (refused for a failed gate without override)."""
    from dlops import decisions, tracking

    params, p = _context(root)
    params.pair(pair)
    tracking.configure(p.root, params.mlflow)
    return decisions.promote(pair, version, params.mlflow, user=_user(), override=override, reason=reason)


def rollback(pair: str, reason: str, root: Path | None = None) -> dict[str, Any]:
    """`dlops rollback`: @champion back to @previous, recorded as a decision."""
    from dlops import decisions, tracking

    params, p = _context(root)
    params.pair(pair)
    tracking.configure(p.root, params.mlflow)
    return decisions.rollback(pair, params.mlflow, user=_user(), reason=reason)


def _user() -> str:
    import getpass
    import os

    return os.environ.get("DLOPS_USER") or getpass.getuser()


def leaderboard(log: bool = False, root: Path | None = None) -> list[dict[str, Any]]:
    """Every model's test metrics and registry standing; `log` records it as an MLflow run."""
    from dlops import leaderboard as board
    from dlops import tracking

    params, p = _context(root)
    tracking.configure(p.root, params.mlflow)
    table = board.rows(params, p.eval_dir, board.registry_state(list(params.models), params.mlflow))
    if log:
        board.log_leaderboard(table, board.markdown(table))
    return table


def lineage(uri: str, root: Path | None = None) -> dict[str, Any]:
    """`dlops lineage`: version -> run -> commit -> data version of a registered model."""
    from dlops import lineage as chain
    from dlops import tracking

    params, p = _context(root)
    tracking.configure(p.root, params.mlflow)
    return chain.lineage(uri, p.root)


def restore_data(uri: str, root: Path | None = None) -> Path:
    """`dlops lineage --restore`: the raw table a version was trained on, by its DVC md5."""
    from dlops import lineage as chain

    return chain.restore_data(lineage(uri, root), paths(root).root)
