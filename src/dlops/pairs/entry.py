"""A model entry as `train` uses it: params.yaml's, with the best values of its search from
reports/search/<pair>.json, which must come from a study of these very params and data (its name says so)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from dlops.kinds import kind_of
from dlops.params import ConfigError, Params, Paths

if TYPE_CHECKING:
    from dlops.params import ModelEntry

log = logging.getLogger(__name__)


def augment_section(params: Params, entry: ModelEntry) -> dict[str, Any]:
    return dict(params.task(entry.task).augment.model_dump(mode="json"))


def search_inputs(p: Paths, params: Params, entry: ModelEntry) -> str:
    """The files a study's trials read: the train/val splits, and a checkpoint file they start from."""
    from dlops.files import file_sha256

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
    inputs = search_inputs(p, params, entry)
    expected = study_lib.study_name(pair, entry, augment_section(params, entry), inputs)
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
