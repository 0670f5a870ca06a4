"""The `search` stage's work: an Optuna study over `models.<pair>.search` on the train/val splits, each
trial an MLflow child run of one parent run, with parallel workers sharing the study's storage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.files import write_json
from dlops.kinds import kind_of
from dlops.pairs.entry import augment_section, search_inputs
from dlops.pairs.setup import reweigh, seeded_model, task_classes_and_shape, training_data
from dlops.params import ConfigError, Params, Paths

if TYPE_CHECKING:
    from dlops.params import ModelEntry


def run(pair: str, params: Params, p: Paths, join: bool, worker: int) -> dict[str, Any]:
    """The pair's Optuna study: this worker's trials (and, unless `join`, N-1 joining worker processes),
    then the summary on the parent MLflow run; returns the result `train` reads (or, joining, a count)."""
    import subprocess
    import sys

    from dlops import search as study_lib
    from dlops import tracking

    entry = params.pair(pair)
    search_cfg = entry.search
    if search_cfg is None:
        raise ConfigError(f"models.{pair}.search is null: there is no study to run")
    name = study_lib.study_name(pair, entry, augment_section(params, entry), search_inputs(p, params, entry))
    url = study_lib.storage_url(search_cfg, p.search_storage())
    study = study_lib.open_study(name, url, search_cfg, worker, create=not join)
    tracking.configure(p.root, params.mlflow)
    run_params = {"search": search_cfg.model_dump(mode="json", exclude={"storage"}), "model": entry.model}
    run_params["train"] = entry.train.model_dump(mode="json")
    tags = tracking.lineage_tags(p.root, entry.task, name)
    parent = tracking.search_parent_run(pair, name, run_params, tags, create=not join)
    trainer = study_lib.Trainer(trial_fit(pair, params, p), tracking.training_run, parent, pair, worker)
    share_cores(search_cfg.workers)
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
    record_search(study, result, parent)
    return result


def record_search(study: Any, result: dict[str, Any], parent_run_id: str) -> None:
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


def trial_fit(pair: str, params: Params, p: Paths) -> Any:
    """fit(entry, logger) for search trials: the train/val data, weights and augmentation loaded once,
    a model built and seeded for each trial's settings as `train` builds it; no resume file."""
    from dlops.training.loop import train as loop_train

    base = params.pair(pair)
    task_cfg = params.task(base.task)
    kind = kind_of(task_cfg)
    classes, input_shape = task_classes_and_shape(p, kind, base.task)
    data = {split: training_data(p, kind, base, split) for split in ("train", "val")}
    weights = reweigh(p, kind, base)
    parent = search_parent(pair, base, params, p)

    def fit(entry: ModelEntry, logger: Any) -> Any:
        from dlops.training import transfer

        model, _ = seeded_model(p, kind, entry, classes, input_shape)
        if parent is not None:  # every trial starts from the parent `train` will start from
            transfer.transfer_weights(model, entry.family, parent, f"models.{pair}.train.init_from")
        augment = kind.batch_augment(task_cfg, len(classes)) if entry.train.augment else None
        return loop_train(model, data, entry.train, sample_weights=weights, augment=augment, logger=logger)

    return fit


def search_parent(pair: str, entry: ModelEntry, params: Params, p: Paths) -> Any:
    """The parent of a fine-tuning search (`train.init_from`: a pinned version or a file), loaded once."""
    import tempfile

    from dlops.pairs import parent as parent_lib

    if entry.train.init_from is None:
        return None
    with tempfile.TemporaryDirectory(prefix="dlops-search-parent-") as tmp:
        return parent_lib.fetch_parent(
            entry.train.init_from, pair=pair, mlflow_cfg=params.mlflow, root=p.root, dst=Path(tmp)
        )


def share_cores(workers: int) -> None:
    """Several trial processes on one CPU split its cores instead of each taking all of them."""
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
