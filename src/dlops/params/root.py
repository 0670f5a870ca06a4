"""The root of params.yaml: `Params` composes the tasks, the model entries, pretraining studies,
retraining and MLflow settings; `load_params` parses the file and names every bad key in its error."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from dlops.params.fields import ConfigError, Strict, plain_name, unknown_name
from dlops.params.models import ModelEntry, PretrainingConfig, check_entry_fits
from dlops.params.paths import paths
from dlops.params.retrain import RetrainConfig
from dlops.params.tasks import TaskConfig, batch_source, without_union_tags


class MlflowConfig(Strict):
    experiment: str = "dlops"
    model_prefix: str = Field("dlops", pattern=r"^[A-Za-z0-9_.-]+$")


class Params(Strict):
    mlflow: MlflowConfig = MlflowConfig()
    retrain: RetrainConfig = RetrainConfig()
    tasks: dict[str, TaskConfig]
    models: dict[str, ModelEntry]
    pretraining: dict[str, PretrainingConfig] = Field(default_factory=dict)

    @field_validator("tasks", "models", "pretraining")
    @classmethod
    def _names_are_safe(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if problem := plain_name(str(name)):
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _pairs_are_known(self) -> Params:
        from dlops.models.registry import known_families

        families = known_families()
        for name, entry in self.models.items():
            if entry.task not in self.tasks:
                raise ValueError(unknown_name("task", entry.task, self.tasks, f"models.{name}.task"))
            if entry.family not in families:
                raise ValueError(unknown_name("family", entry.family, families, f"models.{name}.family"))
            check_entry_fits(name, entry, self.tasks[entry.task])
        for task, spec in self.retrain.batches.items():
            if task not in self.tasks:
                raise ValueError(unknown_name("task", task, self.tasks, f"retrain.batches.{task}"))
            try:  # a bad spec fails here, not at 6 am
                batch_source(task, self.tasks[task], spec, "2000-01-01")
            except ConfigError as exc:
                raise ValueError(f"retrain.batches.{task}: {exc}") from None
        for name, study in self.pretraining.items():
            check_pretraining(f"pretraining.{name}", study, self)
        return self

    def pair(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise ConfigError(unknown_name("model", name, self.models, "models"))
        return self.models[name]

    def task(self, name: str) -> TaskConfig:
        if name not in self.tasks:
            raise ConfigError(unknown_name("task", name, self.tasks, "tasks"))
        return self.tasks[name]


# ------------------------------------------------------------------------------------------- loading
def load_params(path: Path | None = None) -> Params:
    """Parse params.yaml into `Params`, or raise ConfigError naming every bad key."""
    import yaml

    path = path or paths().params
    try:
        with path.open(encoding="utf-8") as stream:  # (a stream: YAML's errors name the file)
            raw = yaml.load(stream, Loader=_unique_keys_loader())  # a SafeLoader
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid parameters\n" + _describe(exc, raw)) from None


def _unique_keys_loader() -> type:
    """A YAML SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last one, so
    `lr: 0.003` then `lr: 0.9` would silently train at 0.9), naming the key and both lines."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults`: a key given here overrides the merged one, on purpose
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"duplicate key {key!r} (line {line}; first given on line {seen[key]}): "
                        "YAML would keep only the last value",
                        key_node.start_mark,
                    )  # fmt: skip
                try:
                    seen[key] = line
                except TypeError:  # an unhashable key: the base loader names it
                    break
            return super().construct_mapping(node, deep)

    return UniqueKeys


def _describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = without_union_tags([str(p) for p in err["loc"]])
        key = ".".join(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            valid = _valid_keys_at(loc[:-1], raw)
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6)
            if close:
                msg += f"; did you mean {'.'.join([*loc[:-1], close[0]])!r}?"
            elif valid:
                msg += f"; valid keys here: {', '.join(sorted(valid))}"
        elif err["type"] == "value_error":  # our own validators: the message says what and where
            msg = msg.removeprefix("Value error, ")
        elif "input" in err and err["type"] != "missing":
            msg += f" (got {err['input']!r})"
        lines.append(f"  - {key}: {msg}" if key else f"  - {msg}")
    return "\n".join(lines)


def _valid_keys_at(loc: list[str], raw: Any) -> list[str]:
    """Field names (with aliases) of the model at `loc`, walking dicts of sub-models alongside the raw
    YAML, which picks the member of a tagged union (a task's `kind`, an ingest `source`)."""
    model: Any = Params
    node = raw
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
        if isinstance(model, _DictOf):  # a dict key such as a task name: step into the value type
            model = model.value
            continue
        if isinstance(model, _Union):
            model = model.pick(_parent(raw, loc, part))
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        by_alias = {f.alias or n: f for n, f in fields.items()}
        field = by_alias.get(part)
        if field is None:
            return []
        model = _submodel(field.annotation)
    if isinstance(model, _Union):
        model = model.pick(node)
    fields = getattr(model, "model_fields", None) or {}
    return [f.alias or n for n, f in fields.items()]


def _parent(raw: Any, loc: list[str], part: str) -> Any:
    """The raw mapping that holds `part` on the path `loc` (the first occurrence)."""
    node = raw
    for step in loc[: loc.index(part)]:
        node = node.get(step) if isinstance(node, dict) else None
    return node


def _submodel(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is dict:
        return _DictOf(_submodel(typing.get_args(annotation)[1]))
    if origin is typing.Annotated:
        return _submodel(typing.get_args(annotation)[0])
    args = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if args:
        return _Union(args)
    return annotation


class _DictOf:
    def __init__(self, value: Any) -> None:
        self.value = value


class _Union:
    def __init__(self, members: list[type[BaseModel]]) -> None:
        self.members = members
        self.model_fields = {k: v for m in members for k, v in m.model_fields.items()}

    def pick(self, node: Any) -> Any:
        """The member whose `kind`/`source` literal matches the raw mapping; else all fields merged."""
        if isinstance(node, dict):
            for member in self.members:
                for tag in ("kind", "source"):
                    field = member.model_fields.get(tag)
                    if field is not None and node.get(tag) in typing.get_args(field.annotation):
                        return member
        return self


def check_pretraining(where: str, study: PretrainingConfig, params: Params) -> None:
    """The study names a task and, on that task, a classifier entry of a family the task's kind
    pretrains: a CNN with an autoencoder or VAE entry (images), or an RNN or Transformer with no encoder
    entry (text: its own body is pretrained by masked-token prediction)."""
    if study.task not in params.tasks:
        raise ValueError(unknown_name("task", study.task, params.tasks, f"{where}.task"))
    from dlops.models.registry import encoder_families

    task = params.tasks[study.task]
    named: list[tuple[str, str, tuple[str, ...]]] = [
        ("classifier", study.classifier, task.pretraining_classifiers)
    ]
    if task.pretrains_own_encoder and study.encoder is not None:
        raise ValueError(
            f"{where}.encoder: a {task.kind} classifier's encoder is pretrained on the training inputs "
            f"(masked tokens); set null (got {study.encoder!r})"
        )
    if not task.pretrains_own_encoder:
        if study.encoder is None:
            raise ValueError(f"{where}.encoder: name an autoencoder or vae entry on task {study.task!r}")
        named.append(("encoder", study.encoder, tuple(encoder_families("cnn"))))
    for key, name, families in named:
        if name not in params.models:
            raise ValueError(unknown_name("model", name, params.models, f"{where}.{key}"))
        entry = params.models[name]
        if entry.family not in families:
            wanted = " or ".join(families)
            raise ValueError(f"{where}.{key}: {name!r} is a {entry.family}; it must be a {wanted}")
        if entry.task != study.task:
            raise ValueError(f"{where}.{key}: {name!r} is on task {entry.task!r}, not {study.task!r}")
