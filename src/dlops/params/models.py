"""Schema of a model entry (one task x family pair) and of a pretraining study, and the checks that
an entry fits its task and family: the kinds it reads, its gates, mitigation, transfer, search and its
family's `model:` keys."""

from __future__ import annotations

import difflib
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from dlops.params.fields import Strict
from dlops.params.gates import EvaluateConfig, GatesConfig
from dlops.params.search import SEARCHABLE_TRAIN_KEYS, SearchConfig, SearchParam
from dlops.params.tasks import TaskConfig
from dlops.params.train import TrainConfig

if TYPE_CHECKING:
    from dlops.models.registry import Objective


class ModelEntry(Strict):
    """One (task, family) pair: what to build, how to train, evaluate and gate it. dvc.yaml reads
    every section, so each must be written out in params.yaml (an empty mapping is fine)."""

    task: str
    family: str
    model: dict[str, Any]
    train: TrainConfig
    evaluate: EvaluateConfig
    gates: GatesConfig
    search: SearchConfig | None = None  # stage `search`; null = train on the values above


# ------------------------------------------------------------------------------------------ pretraining
class PretrainingConfig(Strict):
    """Stage `pretraining`: does an encoder trained without labels help a classifier trained on few labels?
    A CNN (`classifier` of family cnn) starts from the encoder of `encoder` (an autoencoder or VAE on the
    same task); an RNN or Transformer text classifier from its own embedding and encoder pretrained on the
    training texts by masked-token prediction (`encoder` null). Each arm trains on `label_fraction`."""

    task: str
    classifier: str  # a model entry of family cnn, or rnn / transformer on a text task
    encoder: str | None = None  # cnn: a model entry of family autoencoder or vae; text: null
    label_fraction: float = Field(0.1, gt=0.0, le=1.0)  # of train and val, stratified, >= 1 per class
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    freeze: list[str] = Field(default_factory=list)  # the pretrained arm: prefixes kept as loaded
    head_lr: float | None = Field(None, gt=0.0, le=10.0)  # the pretrained arm: the head's rate; null = lr
    # false: both arms train the classifier's full `epochs` (best val epoch kept): a fraction of the val
    # split is too few rows to stop on, and stopping early cut the scratch arm off at chance level
    early_stopping: bool = False
    # `all`: the study trains the encoder entry's architecture with its train settings on every training
    # image, labels unused (self-supervised); `model`: models/<encoder>/model.pt as its stage trained it
    # (an anomaly detector saw only its normal classes). Text: always all training texts.
    encoder_data: Literal["all", "model"] = "all"
    # text classifiers: masked-token pretraining (evaluation/text_pretraining.py) with the classifier's
    # train settings, for `encoder_epochs` epochs (null = the classifier's) with early stopping on the
    # validation texts' masked-token loss
    mask_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    encoder_epochs: int | None = Field(None, ge=1, le=10_000)


def check_entry_fits(name: str, entry: ModelEntry, task: TaskConfig) -> None:
    """A family runs on the kinds of task it can read; its gates read metrics its kind produces."""
    from dlops.models.registry import family_kinds, objectives_of

    where = f"models.{name}"
    if task.kind not in family_kinds(entry.family):
        raise ValueError(
            f"{where}.family: {entry.family!r} does not run on {task.kind} tasks "
            f"(it runs on {sorted(family_kinds(entry.family))})"
        )
    check_model_section(f"{where}.model", entry.family, entry.model)
    if entry.evaluate.judge is not None:  # the judge is the project's CNN
        check_model_section(f"{where}.evaluate.judge.model", "cnn", entry.evaluate.judge.model)
    objectives = objectives_of(entry.family, task.kind)
    allowed = set().union(*(o.primary_metrics for o in objectives))
    if entry.gates.primary_metric not in allowed:
        raise ValueError(
            f"{where}.gates.primary_metric: {entry.gates.primary_metric!r} is not measured for family "
            f"{entry.family!r}; choose one of {sorted(allowed)}"
        )
    classes = any(o.decides_classes for o in objectives)
    if classes and task.columns.sensitive:
        for gate in ("max_demographic_parity_difference", "max_equalized_odds_difference"):
            if getattr(entry.gates, gate) is None:
                raise ValueError(
                    f"{where}.gates.{gate}: must be set, task {entry.task!r} has sensitive columns "
                    f"{task.columns.sensitive} (a classifier on it is never promoted unchecked)"
                )
    if entry.gates.max_group_error_gap is not None and not task.columns.sensitive:
        raise ValueError(
            f"{where}.gates.max_group_error_gap: task {entry.task!r} has no columns.sensitive to group its "
            "series by; set it null"
        )
    _check_mitigation(where, entry, task, classes)
    _check_transfer(where, entry, classes)
    if entry.search is not None:
        check_search(where, entry, objectives)
    if any(o.judged for o in objectives) and entry.evaluate.judge is None:
        raise ValueError(f"{where}.evaluate.judge: a {entry.family} needs a judge CNN to be evaluated")


def _check_transfer(where: str, entry: ModelEntry, classes: bool) -> None:
    """Freezing keeps loaded weights, so it needs a parent; a separate head rate needs a classifier head."""
    if entry.train.freeze and entry.train.init_from is None:
        raise ValueError(
            f"{where}.train.freeze: {entry.train.freeze} freezes weights as loaded, so it needs "
            f"{where}.train.init_from (without a parent they would stay at their random initialisation)"
        )
    if entry.train.head_lr is not None and not classes:
        raise ValueError(f"{where}.train.head_lr: a {entry.family} has no classifier `head`; set null")


def _check_mitigation(where: str, entry: ModelEntry, task: TaskConfig, classes: bool) -> None:
    """Reweighing and fair thresholds name sensitive columns of the task and need a classifier."""
    post = entry.evaluate.postprocess
    for key, attributes in (("train.reweigh", entry.train.reweigh), ("evaluate.postprocess", post)):
        if not attributes:
            continue
        if not classes or not task.mitigation:
            raise ValueError(f"{where}.{key}: mitigation applies to tabular and text classifiers")
        names = attributes if isinstance(attributes, list) else attributes.attributes
        unknown = [a for a in names if a not in task.columns.sensitive]
        if unknown:
            raise ValueError(
                f"{where}.{key}: {unknown} not among the sensitive columns {task.columns.sensitive} "
                f"of task {entry.task!r}"
            )
    if post is not None and post.tol is not None and post.constraint == "equalized_odds":
        raise ValueError(f"{where}.evaluate.postprocess.tol: fairlearn relaxes demographic parity only")


# ------------------------------------------------------------------------------------- model sections
def check_model_section(where: str, family: str, model: dict[str, Any]) -> None:
    """Each key of a `model:` mapping is a setting of the family's config, of its type. The registry
    describes the config, so neither the family's module nor torch is imported; ranges and relations
    between keys stay with the family's dataclass, checked when the model is built."""
    from dlops.models.registry import BUILDER_ARGS, get_family

    described = get_family(family)
    keys = described.model_keys
    for key, value in model.items():
        if key in BUILDER_ARGS or key in described.filled:
            raise ValueError(
                f"{where}.{key}: the pipeline sets it from the task's data (it sets "
                f"{', '.join(sorted(BUILDER_ARGS | described.filled))}); remove it from params.yaml"
            )
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=1)
            hint = f"; did you mean {where + '.' + close[0]!r}?" if close else ""
            valid = ", ".join(sorted(keys))
            raise ValueError(f"{where}.{key}: unknown key; valid keys of family {family!r}: {valid}{hint}")
        if not _holds(value, keys[key]):
            raise ValueError(f"{where}.{key}: must be {_spelled(keys[key])}, got {value!r}")


def _holds(value: object, annotation: object) -> bool:
    """`value`, as YAML gives it, is of the type `annotation` (int, float, bool, str, list[...], X | None);
    a bool is not a number and an integer is a float."""
    if typing.get_origin(annotation) is types.UnionType:
        return any(_holds(value, member) for member in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_holds(v, item) for v in value)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(annotation, type) and isinstance(value, annotation)


_WORDS: dict[object, str] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    type(None): "null",
}
_PLURALS: dict[object, str] = {int: "integers", float: "numbers", str: "strings"}


def _spelled(annotation: object) -> str:
    """The type as a params.yaml reader says it: `a list of integers or null`."""
    if typing.get_origin(annotation) is types.UnionType:
        return " or ".join(_spelled(member) for member in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return f"a list of {_PLURALS[typing.get_args(annotation)[0]]}"
    return _WORDS[annotation]


def check_search(where: str, entry: ModelEntry, objectives: list[Objective]) -> None:
    """Searched keys name a train field or a key of the model's own `model:` mapping; the objective is
    measured for the family; a GAN has no validation score to search on."""
    search = entry.search
    assert search is not None
    if not any(o.validation_score for o in objectives):
        raise ValueError(f"{where}.search: a {entry.family} has no validation score to search on; set null")
    if search.objective == "val/accuracy" and not any(o.decides_classes for o in objectives):
        raise ValueError(f"{where}.search.objective: val/accuracy is measured for classifiers; use val/loss")
    init_from = entry.train.init_from
    if init_from is not None and (init_from == "champion" or "@" in init_from):
        raise ValueError(
            f"{where}.search: train.init_from {init_from!r} moves (a new champion, an alias moved), so the "
            "study's trials and the retrained model could start from different parents; pin the parent "
            "with models:/<name>/<version> or a checkpoint file"
        )
    for key, spec in search.space.items():
        section, _, name = key.partition(".")
        if section == "train" and name in SEARCHABLE_TRAIN_KEYS:
            current = getattr(entry.train, name)
            whole = TrainConfig.model_fields[name].annotation is int
        elif section == "model" and name in entry.model:
            current, whole = entry.model[name], False
        else:
            raise ValueError(
                f"{where}.search.space.{key}: not searchable; use train.<{'|'.join(SEARCHABLE_TRAIN_KEYS)}> "
                f"or model.<a key of {where}.model: {sorted(entry.model)}>"
            )
        _check_space_holds(f"{where}.search.space.{key}", spec, current, whole)


def _check_space_holds(where: str, spec: SearchParam, current: Any, whole: bool) -> None:
    """The space holds the value params.yaml gives (the study's first trial, what the best is compared
    with); an integer setting is searched over integers."""
    if spec.choices is not None:
        if current not in spec.choices:
            raise ValueError(
                f"{where}: the current value {current!r} must be one of the choices {spec.choices}"
            )
        return
    if whole and not spec.is_int:
        raise ValueError(f"{where}: an integer setting; write low and high (and step) as integers")
    assert spec.low is not None and spec.high is not None
    if (
        isinstance(current, bool)
        or not isinstance(current, int | float)
        or not spec.low <= current <= spec.high
    ):
        raise ValueError(f"{where}: the current value {current!r} must lie in [{spec.low}, {spec.high}]")
