"""A training run as `train` records it: rank 0 trains the pair, logs to MLflow with its lineage,
warm-starts from `train.init_from`, and writes the self-describing checkpoint and history; other
torchrun ranks train their shard and write nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.files import write_json
from dlops.pairs.setup import resumable, train_setup, warm_start_record
from dlops.params import Params, Paths
from dlops.privacy.dp import run_tags

if TYPE_CHECKING:
    from dlops.params import ModelEntry

log = logging.getLogger(__name__)


def train_replica(pair: str, params: Params, p: Paths, max_epochs: int | None) -> None:
    """A torchrun rank other than 0: the same training on its shard, nothing logged or written."""
    from dlops.training.loop import train as fit

    setup = train_setup(pair, params, p)
    fit(setup.model, **setup.fit_args, max_epochs=max_epochs)


def train_and_record(
    pair: str, params: Params, p: Paths, device: Any, world_size: int, max_epochs: int | None
) -> dict[str, Any]:
    from dlops import tracking
    from dlops.files import file_sha256
    from dlops.training.checkpoint import model_checkpoint, save_atomic
    from dlops.training.loop import train as fit

    setup = train_setup(pair, params, p)
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
        warm_tags, init_from = warm_start(model, pair, entry, params, p, setup.fingerprint)
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
            privacy=result.privacy,
        )
        save_atomic(ckpt, p.checkpoint(pair))
        write_json(p.history(pair), result.history_dict())
        sha = file_sha256(p.checkpoint(pair))
        run.set_tags(
            {
                "dlops.model_sha256": sha,
                "train.best_epoch": str(result.best_epoch),
                "train.resumed_from_epoch": str(result.resumed_from_epoch),
                **run_tags(result.privacy),
            }
        )
    p.resume_checkpoint(pair).unlink(missing_ok=True)
    warm_start_record(p, pair).unlink(missing_ok=True)
    return {"best_epoch": result.best_epoch, "epochs": len(result.history), "model_sha256": sha}


def warm_start(
    model: Any, pair: str, entry: ModelEntry, params: Params, p: Paths, fingerprint: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """`train.init_from`: initialise the freshly built `model` from its parent (pairs/parent.py);
    returns the training run's lineage tags and the checkpoint's `init_from`.

    Resuming an interrupted run wins: its last.pt holds weights that already descend from the parent
    recorded when it started (.dlops/checkpoints/<pair>/init_from.json), so that record is returned and
    nothing is downloaded. Errors reaching the tracking store propagate.
    """
    import tempfile

    from dlops.pairs import parent as parent_lib

    record = warm_start_record(p, pair)
    if resumable(p.resume_checkpoint(pair), fingerprint):
        saved = json.loads(record.read_text()) if record.is_file() else {}
        if saved.get("fingerprint") == fingerprint:
            log.info("train %s: resuming, from weights warm-started by %s", pair, saved["tags"]["init_from"])
            return saved["tags"], saved["init_from"]
        log.warning("train %s: resuming a run whose warm start was not recorded", pair)
        return {"init_from": "unknown (resumed run)"}, {"uri": None, "note": "resumed run, parent unknown"}

    with tempfile.TemporaryDirectory(prefix="dlops-init-from-") as tmp:
        tags, meta = parent_lib.warm_start(
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
