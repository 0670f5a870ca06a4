"""`dlops add-task NAME --from FILE`: a new task and its models in params.yaml, read off a data file.

`plan` infers the kind and the column roles (`dlops.add_task_inference`), copies the default task and
models of that kind from params.yaml (a small built-in template where they are missing), fits the
validation limits to what the file holds, and renders the new params.yaml text; nothing is written.
`apply` checks that text with `load_params`, then writes params.yaml, dag.yaml and reports/dvc.yaml,
ingests the task and drafts its suite; when a step fails it puts every file back as it was.

params.yaml keeps its bytes: the new entries are inserted as text at the end of `tasks:` and `models:`,
never re-dumped (a YAML round trip loses `null`s, anchors' comments and the hand layout).
"""

from __future__ import annotations

import copy
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlops.add_task_inference import AddTaskError, Choices, Inferred, infer, written_path
from dlops.kinds.base import NewTask
from dlops.params import ConfigError, Params, Paths, load_params, paths

log = logging.getLogger(__name__)

NAME_RULE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
FAIRNESS_LIMITS = {  # a new model's fairness gates when the copied entry sets none
    "max_demographic_parity_difference": 0.1,
    "max_equalized_odds_difference": 0.15,
}
BUILT_IN_TRAIN = {"epochs": 20, "batch_size": 64, "lr": 0.003, "patience": 5, "seed": 42}


@dataclass
class Plan:
    """What `apply` writes: the entries, the params.yaml text before and after, and what was inferred."""

    name: str
    inferred: Inferred
    task: dict[str, Any]
    models: dict[str, dict[str, Any]]
    before: str
    after: str
    notes: list[str] = field(default_factory=list)

    @property
    def suite(self) -> str:
        return str(self.task["validate"]["suite"])


# ------------------------------------------------------------------------------------------------ plan
def plan(name: str, source: Path, choices: Choices, root: Path | None = None) -> Plan:
    """The task NAME reading `source`, its models and the new params.yaml text; writes nothing."""
    p = paths(root)
    before = p.params.read_text(encoding="utf-8") if p.params.is_file() else ""
    if not before:
        raise ConfigError(f"{p.params}: not found; run `dlops add-task` in a dlops project (or pass --root)")
    raw = yaml.safe_load(before)
    inferred = infer(source, written_path(source, p.root), choices, p.root)
    if choices.kind is not None and inferred.kind != choices.kind:
        raise AddTaskError(f"{source}: reads as a {inferred.kind} task, not {choices.kind} (--kind)")
    models = _models(name, inferred, raw)
    _check_name(name, raw, models)
    notes = list(inferred.notes)
    task = _task(name, inferred, raw, notes)
    _fit_limits(name, task, p.root, notes)
    after = with_entries(before, name, task, models, f"{written_path(source, p.root)}")
    return Plan(name, inferred, task, models, before, after, notes)


def _check_name(name: str, raw: dict[str, Any], models: dict[str, Any]) -> None:
    if not NAME_RULE.fullmatch(name):
        raise AddTaskError(
            f"task name {name!r}: use lowercase letters, digits and '-', starting with a letter (at most 40)"
        )
    tasks, known = raw.get("tasks") or {}, raw.get("models") or {}
    if name in tasks:
        raise AddTaskError(f"params.yaml: tasks.{name} exists already; choose another name")
    if name in known:
        raise AddTaskError(f"params.yaml: models.{name} exists; a task may not share a model's name")
    if clash := sorted(set(models) & set(known)):
        raise AddTaskError(f"params.yaml: models {clash} exist already; choose another task name")


def _task(name: str, inferred: Inferred, raw: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The default task of the kind (its validate, preprocess and augment sections) with the new source
    and columns; the built-in template when params.yaml has no task of that kind."""
    tasks = raw.get("tasks") or {}
    new_task = _new_task(inferred.kind)
    same_kind = [t for n, t in tasks.items() if t.get("kind") == inferred.kind and n == inferred.kind]
    same_kind += [t for t in tasks.values() if t.get("kind") == inferred.kind]
    template = copy.deepcopy(same_kind[0] if same_kind else new_task.sections)
    if not same_kind:
        notes.append(f"params.yaml has no {inferred.kind} task to copy: built-in validate/preprocess limits")
    validate = template.get("validate", {})
    validate.update(suite=f"expectations/{name}.json", draft_if_missing=False)
    preprocess = template.get("preprocess", {})
    preprocess.get("split", {}).pop("column", None)  # the template's own split column is not in this file
    ingest = dict(inferred.ingest)
    kept = new_task.template_ingest  # e.g. an image size, not the template's source
    ingest.update({k: v for k, v in template.get("ingest", {}).items() if k in kept})
    return {"kind": inferred.kind, "ingest": ingest, "columns": inferred.columns, "validate": validate,
            "preprocess": preprocess, "augment": template.get("augment", {})}  # fmt: skip


def _models(name: str, inferred: Inferred, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`<name>-<family>` for each default model of the kind, copied with `task: name`, no search, and the
    fairness gates off without sensitive columns (on, at the template's limits, with them)."""
    known = raw.get("models") or {}
    sensitive = bool(inferred.columns.get("sensitive"))
    models = {}
    new_task = _new_task(inferred.kind)
    for default in new_task.models:
        if default in known:
            entry = copy.deepcopy(known[default])
        elif default in new_task.built_in_models:
            gates = {"primary_metric": new_task.primary_metric, "min_primary": 0.7, "max_overfit_gap": 0.1}
            entry = {**copy.deepcopy(new_task.built_in_models[default]), "train": dict(BUILT_IN_TRAIN)}
            entry.update(evaluate={}, gates=gates)
        else:
            continue
        entry.update(task=name, search=None)
        entry.get("train", {}).pop("reweigh", None)  # mitigation names the template task's columns
        entry.get("evaluate", {}).pop("postprocess", None)
        gates = entry.setdefault("gates", {})
        gates.pop("control", None)
        for gate, limit in FAIRNESS_LIMITS.items():
            gates[gate] = (gates.get(gate) or limit) if sensitive else None
        models[f"{name}-{entry['family']}"] = entry
    return models


# ---------------------------------------------------------------------------------------------- limits
def _fit_limits(name: str, task: dict[str, Any], root: Path, notes: list[str]) -> None:
    """Read the file as ingest will, and relax a `validate` limit the file itself breaks (fewer rows than
    min_rows, a rarer class, more duplicates, longer texts), saying which and why."""
    from pydantic import TypeAdapter, ValidationError

    from dlops.kinds import kind_of
    from dlops.params import TaskConfig

    try:
        cfg = TypeAdapter(TaskConfig).validate_python(task)
    except ValidationError as exc:
        raise ConfigError(f"tasks.{name}: the drafted entry is invalid: {exc}") from None
    kind = kind_of(cfg)
    frame = kind.load(cfg, root)
    validate = task["validate"]
    label = frame[task["columns"].get("target", "label")].dropna().astype(str)
    shares = label.value_counts(normalize=True)
    duplicates = float(frame[_new_task(kind.name).duplicate_key].duplicated(keep=False).mean())
    observed = {
        "min_rows": (len(frame), "the file has {} rows"),
        "min_class_fraction": (_down(shares.min()), "its rarest class is {:.0%} of rows"),
        "max_class_fraction": (_up(shares.max()), "its commonest class is {:.0%} of rows"),
        "max_duplicate_fraction": (_up(duplicates), "{:.0%} of its rows are duplicated"),
        **kind.observed_limits(frame),
    }
    for key, (value, why) in observed.items():
        keep = max if key.startswith("max_") else min  # a limit only loosens, to let the file pass
        if key in validate and keep(validate[key], value) != validate[key]:
            notes.append(f"validate.{key}: {validate[key]} -> {value} ({why.format(value)})")
            validate[key] = value


def drafted_kinds() -> list[str]:
    """The task kinds `dlops add-task` drafts: those with `Kind.new_task` set."""
    from dlops.kinds import get_kind, known_kinds

    return [k for k in known_kinds() if get_kind(k).new_task is not None]


def _new_task(kind_name: str) -> NewTask:
    """The kind's add-task defaults (`Kind.new_task`)."""
    from dlops.kinds import get_kind

    new_task = get_kind(kind_name).new_task
    if new_task is None:
        raise AddTaskError(f"dlops add-task drafts {', '.join(drafted_kinds())} tasks, not {kind_name}")
    return new_task


def _down(share: float) -> float:
    return math.floor(float(share) * 100) / 100


def _up(share: float) -> float:
    return min(1.0, math.ceil(float(share) * 100) / 100)


# ------------------------------------------------------------------------------------- params.yaml text
def with_entries(text: str, name: str, task: dict[str, Any], models: dict[str, Any], source: str) -> str:
    """params.yaml's text with the task appended to `tasks:` and the models to `models:`, every other
    byte as it was; the result is parsed back and must hold exactly the old entries and the new ones."""
    note = f"added by `dlops add-task` from {source}: review the roles, the limits and the suite"
    new_text = _append(text, "tasks", {name: task}, note)
    if models:
        new_text = _append(new_text, "models", models, f"the models of task {name} (`dlops add-task`)")
    old, new = yaml.safe_load(text), yaml.safe_load(new_text)
    expected = {**old, "tasks": {**old["tasks"], name: task}, "models": {**(old["models"] or {}), **models}}
    if new != expected:  # an odd layout the line-based insertion misread: refuse rather than guess
        raise ConfigError("params.yaml: could not add the entries without changing others; add them by hand")
    return new_text


def _append(text: str, section: str, entries: dict[str, Any], note: str) -> str:
    """`entries` as block YAML after the last content line of the top-level `section:` mapping."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"{section}:\s*(#.*)?$", line)), None)
    if start is None:
        flow = any(line.startswith(f"{section}:") for line in lines)
        how = "is written in flow style ({...}); write it as a block mapping" if flow else "is missing"
        raise ConfigError(f"params.yaml: the top-level `{section}:` section {how}")
    last, indent = start, None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            break  # the next top-level key
        if line.strip() and not line.lstrip().startswith("#"):
            last = i
            indent = indent if indent is not None else len(line) - len(line.lstrip())
    pad = " " * (indent or 2)
    body = yaml.dump(entries, Dumper=_Layout, sort_keys=False, width=110, allow_unicode=True)
    block = "\n" + pad + f"# {note}\n" + "".join(pad + line for line in body.splitlines(keepends=True))
    lines[last] = lines[last] if lines[last].endswith("\n") else lines[last] + "\n"
    return "".join([*lines[: last + 1], block, *lines[last + 1 :]])


class _Layout(yaml.SafeDumper):
    """params.yaml's hand layout: short mappings and lists of scalars on one line, the rest as blocks."""


def _leaf(value: Any) -> bool:
    return not isinstance(value, dict | list) or not value


def _mapping(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = all(_leaf(v) for v in data.values()) and len(str(data)) <= 60
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


def _sequence(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=all(map(_leaf, data)))


_Layout.add_representer(dict, _mapping)
_Layout.add_representer(list, _sequence)


# ----------------------------------------------------------------------------------------------- apply
def apply(planned: Plan, root: Path | None = None) -> Path:
    """Check the new params, write them, dag.yaml and reports/dvc.yaml, ingest the task and draft its
    suite (an existing suite is kept). A failure puts every file back byte for byte, then re-raises."""
    from dlops.workspace import ensure_free

    p = paths(root)
    ensure_free(p.root)
    if p.params.read_text(encoding="utf-8") != planned.before:
        raise ConfigError(f"{p.params}: changed while `dlops add-task` ran; run it again")
    params = checked(planned.after, p)
    suite = p.root / planned.suite
    saved = {path: path.read_bytes() if path.is_file() else None for path in (p.params, p.dag, p.plots)}
    created = [path for path in (p.raw(planned.name), suite) if not path.exists()]
    try:
        _write(planned, params, p, suite)
    except BaseException:
        _put_back(saved, created)
        log.warning("add-task %s: put back params.yaml, dag.yaml and reports/dvc.yaml", planned.name)
        raise
    return suite


def checked(text: str, p: Paths) -> Params:
    """`load_params` on the candidate text, written beside params.yaml (its errors name params.yaml)."""
    from dlops.files import temp_sibling, write_text

    candidate = temp_sibling(p.params)
    try:
        write_text(candidate, text)
        return load_params(candidate)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(str(candidate), str(p.params))) from None
    finally:
        candidate.unlink(missing_ok=True)


def _write(planned: Plan, params: Params, p: Paths, suite: Path) -> None:
    from dlops import dag, stages
    from dlops.files import write_text

    write_text(p.params, planned.after)
    dag.write(params, p)
    if suite.exists():  # a reviewed suite from before: kept, never overwritten
        stages.ingest(planned.name, p.root)
    else:
        stages.draft_expectations(planned.name, p.root)


def _put_back(saved: dict[Path, bytes | None], created: list[Path]) -> None:
    from dlops.files import write_bytes

    for path, data in saved.items():
        if data is None:
            path.unlink(missing_ok=True)
        elif not path.is_file() or path.read_bytes() != data:
            write_bytes(path, data)
    for path in created:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- summary
def roles(planned: Plan) -> list[tuple[str, str]]:
    """(role, columns) rows of what the task reads: shown before asking, and in the summary."""
    columns, ingest = planned.task["columns"], planned.task["ingest"]
    rows = [("kind", f"{planned.inferred.kind} ({ingest['source']})")]
    if "text_column" in ingest:
        rows += [("text", ingest["text_column"]), ("label", ingest["label_column"])]
    for role in ("target", "positive_label", "sensitive", "numeric", "categorical", "ignored", "identifiers"):
        if role in columns and columns[role] not in (None, [], {}):
            value = columns[role]
            shown = ", ".join(map(str, value)) if isinstance(value, list | dict) else str(value)
            rows.append((role, repr(value) if role == "positive_label" else shown))
    return rows


def summary(planned: Plan, suite: Path, root: Path | None = None) -> list[str]:
    """What was written and the command that runs it."""
    p = paths(root)
    where = suite.relative_to(p.root) if suite.is_relative_to(p.root) else suite
    stages = " ".join(f"{s}@{m}" for m in planned.models for s in ("train", "evaluate", "register"))
    return [
        f"added task {planned.name!r} to params.yaml:",
        *[f"  {role}: {value}" for role, value in roles(planned)],
        *[f"  - {note}" for note in planned.notes if not note.startswith("kind:")],
        f"models: {', '.join(planned.models) or 'none (no default model of this kind to copy)'}",
        f"suite: {where} (drafted from the file: review it like code, then commit it)",
        "next: `dlops run` (the whole pipeline), or just this task: "
        f"`dvc repro ingest@{planned.name} validate@{planned.name} preprocess@{planned.name} {stages}`",
    ]


def print_roles(planned: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"task {planned.name}: what each column is for")
    table.add_column("role")
    table.add_column("columns")
    for role, value in roles(planned):
        table.add_row(role, value)
    Console(stderr=True).print(table)
    for note in planned.notes:
        Console(stderr=True).print(f"  {note}", markup=False, highlight=False)
