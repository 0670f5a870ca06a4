"""dag.yaml: what dvc.yaml needs to know about params.yaml but cannot look up itself.

DVC's templating cannot index one mapping by another's value (`${tasks.${item.task}.kind}`) nor splice
a list into `deps`. So `dlops dag` writes, from params.yaml, each task's kind, suite and input files (fixed
slots; an unused slot repeats the kind's package, which the stage reads anyway), each model's task,
kind and family, and `searches`: the models that have a search, the only ones with a `search` stage.
dvc.yaml loads it as `vars` and walks it with `foreach`: every stage lists the code of its own kind
only, and `ingest` the user's files, so editing, replacing or appending to them reruns that task's
stages and nothing else. `dlops run` rewrites it before `dvc repro`; every stage and
`dlops check-params` stop, naming the command, when it no longer matches params.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dlops.params import ConfigError, Params, Paths

INPUT_SLOTS = 3  # input files a task's source may read: IDX images + labels + metadata CSV
HEADER = (
    "# Written by `dlops dag` from params.yaml (`dlops run` does it first); dvc.yaml reads it as vars.\n"
    "# Do not edit: change params.yaml, then run `dlops dag`.\n"
)


def render(params: Params, root: Path) -> dict[str, Any]:
    """The `dag` mapping for params: tasks with kind and input slots; models, searches and studies with
    kind."""
    from dlops.params.fields import input_paths

    tasks: dict[str, Any] = {}
    for name, task_cfg in params.tasks.items():
        package = f"src/dlops/kinds/{task_cfg.kind}"
        inputs = [_relative(root / path, root) for path in input_paths(task_cfg.ingest)]
        if len(inputs) > INPUT_SLOTS:
            raise ConfigError(
                f"tasks.{name}.ingest reads {len(inputs)} inputs; dvc.yaml has {INPUT_SLOTS} slots"
            )
        slots = inputs + [package] * (INPUT_SLOTS - len(inputs))
        tasks[name] = {"kind": task_cfg.kind, **{f"input_{i + 1}": s for i, s in enumerate(slots)}}
        tasks[name]["suite"] = task_cfg.validate_.suite
    models = {}
    for name, entry in params.models.items():
        family_file = f"src/dlops/models/{entry.family}.py"
        models[name] = {
            "task": entry.task,
            "kind": params.tasks[entry.task].kind,
            "family": entry.family,
            # train's dep on its search's best values; a model without a search has no search stage,
            # and the slot repeats its family's file, which train reads anyway
            "search_result": f"reports/search/{name}.json" if entry.search is not None else family_file,
        }
    searches = {name: models[name] for name, entry in params.models.items() if entry.search is not None}
    studies = {}
    for name, study in params.pretraining.items():
        # a text study pretrains the classifier's own architecture: its encoder slots name the classifier
        # and its family's file; a CNN study's name the encoder entry and its model file
        encoder = study.encoder or study.classifier
        family = params.models[study.classifier].family
        family_file = f"src/dlops/models/{family}.py"
        encoder_file = f"models/{study.encoder}/model.pt" if study.encoder else family_file
        studies[name] = {
            "task": study.task,
            "kind": params.tasks[study.task].kind,
            "classifier": study.classifier,
            "encoder": encoder,
            "encoder_file": encoder_file,
        }
    return {"dag": {"tasks": tasks, "models": models, "searches": searches, "pretraining": studies}}


def text(params: Params, root: Path) -> str:
    import yaml

    return HEADER + yaml.safe_dump(render(params, root), sort_keys=True, default_flow_style=False)


def write(params: Params, p: Paths) -> bool:
    """Write dag.yaml for params; True when it changed."""
    from dlops.files import write_text

    new = text(params, p.root)
    if p.dag.is_file() and p.dag.read_text(encoding="utf-8") == new:
        return False
    write_text(p.dag, new)
    return True


def check_inputs(params: Params, root: Path) -> None:
    """Stop, naming the key and the path, when a task's ingest reads a local file or folder that is not
    there: DVC would otherwise stop on the missing dependency with its own error before any stage ran."""
    from dlops.data.inputs import DataSourceError
    from dlops.params.fields import input_paths

    for name, task_cfg in params.tasks.items():
        for path in input_paths(task_cfg.ingest):
            if not (root / path).exists():
                raise DataSourceError(f"tasks.{name}.ingest: {path}: not found (no such file or folder)")


def check(params: Params, p: Paths) -> None:
    """Stop when dag.yaml does not say what params.yaml says (a stale DAG would miss or mistrack work)."""
    if p.dag.is_file() and p.dag.read_text(encoding="utf-8") == text(params, p.root):
        return
    why = "is missing" if not p.dag.is_file() else "does not match params.yaml"
    raise ConfigError(f"{p.dag.name} {why}: run `dlops dag` (`dlops run` does it), then `dvc repro`")


def _relative(path: Path, root: Path) -> str:
    """A path as dvc.yaml names it: relative to the project when inside it, else absolute."""
    full = Path(os.path.abspath(path))
    return full.relative_to(root).as_posix() if full.is_relative_to(root) else full.as_posix()
