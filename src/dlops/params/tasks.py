"""A task is an instance of a kind (tabular, images, text, timeseries): the union of the kinds' schemas,
tagged by `kind`, and the batches a scheduled run reads, checked like a task's `ingest`."""

from __future__ import annotations

import typing
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from dlops.params.fields import ConfigError
from dlops.params.tasks_images import (
    DigitsSource,
    IdxSource,
    ImageFolderSource,
    ImageTask,
    NpzSource,
)
from dlops.params.tasks_tabular import SyntheticIncomeSource, TableSource, TabularTask
from dlops.params.tasks_text import (
    SyntheticReviewsSource,
    TextFolderSource,
    TextTableSource,
    TextTask,
)
from dlops.params.tasks_timeseries import SeriesTableSource, SeriesTask, SyntheticSeriesSource

TaskConfig = Annotated[TabularTask | ImageTask | TextTask | SeriesTask, Field(discriminator="kind")]
SourceConfig = (
    SyntheticIncomeSource | TableSource | DigitsSource | IdxSource | NpzSource | ImageFolderSource
    | SyntheticReviewsSource | TextTableSource | TextFolderSource | SyntheticSeriesSource | SeriesTableSource
)  # fmt: skip


def _ingest_schema(member: Any) -> Any:
    """A task schema's `ingest` type with its field info (the `source` discriminator)."""
    info = member.model_fields["ingest"]
    return Annotated[info.annotation, info]


INGEST_BY_KIND: dict[str, Any] = {  # each kind's `ingest` schema, read off the union's members
    typing.get_args(member.model_fields["kind"].annotation)[0]: _ingest_schema(member)
    for member in typing.get_args(typing.get_args(TaskConfig)[0])
}


def _tags(union: Any, field: str) -> frozenset[str]:
    """The literal values of `field` (`kind`, `source`) over the members of a tagged union."""
    members = typing.get_args(typing.get_args(union)[0])  # Annotated[A | B, Field(...)] -> (A, B)
    return frozenset(tag for m in members for tag in typing.get_args(m.model_fields[field].annotation))


KIND_TAGS = _tags(TaskConfig, "kind")
SOURCE_TAGS = frozenset().union(*(_tags(union, "source") for union in INGEST_BY_KIND.values()))


def without_union_tags(loc: list[str]) -> list[str]:
    """Pydantic puts the discriminator value into the error path (tasks.t.images.ingest.idx.size);
    drop it so the path is the key a user writes (tasks.t.ingest.size)."""
    out = []
    for i, part in enumerate(loc):
        after_task_name = i == 2 and loc[0] == "tasks"
        if (after_task_name and part in KIND_TAGS) or (i and loc[i - 1] == "ingest" and part in SOURCE_TAGS):
            continue
        out.append(part)
    return out


# ------------------------------------------------------------------------------------------ batches
GENERATORS = ("synthetic-income", "synthetic-reviews")  # synthetic-series continues its own draw


def batch_source(task: str, task_cfg: TaskConfig, spec: dict[str, Any], date: str) -> SourceConfig:
    """The source config a batch spec describes, checked like `tasks.<task>.ingest` is."""
    spec = dict(spec)
    source = spec.get("source", task_cfg.ingest.source)
    spec["source"] = source
    if source in GENERATORS and "seed" not in spec:
        spec["seed"] = int(date.replace("-", ""))  # next week's draw, reproducible from its date
    for key in ("path", "images", "labels"):
        if isinstance(spec.get(key), str):
            spec[key] = spec[key].replace("{date}", date)
    for key, value in task_cfg.batch_defaults().items():
        spec.setdefault(key, value)
    try:
        parsed: SourceConfig = TypeAdapter(INGEST_BY_KIND[task_cfg.kind]).validate_python(spec)
    except ValidationError as exc:
        problems = "; ".join(_batch_problem(e) for e in exc.errors())
        raise ConfigError(f"batch for task {task!r}: {problems}") from None
    return parsed


def _batch_problem(error: ErrorDetails) -> str:
    """`key: message` of one validation error of a batch spec, the union's source tag left out."""
    key = ".".join(without_union_tags(["ingest", *map(str, error["loc"])])[1:])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}" if key else message
