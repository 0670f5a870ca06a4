"""dag.yaml: what dvc.yaml needs to know about params.yaml but cannot look up itself.

DVC's templating cannot index one mapping by another's value (`${tasks.${item.task}.kind}`) nor splice
a list into `deps`. So `dlops dag` writes, from params.yaml, each task's kind, suite and input files (fixed
slots; an unused slot repeats the kind's package, which the stage reads anyway), each model's task,
kind and family, and `searches`: the models that have a search, the only ones with a `search` stage.
dvc.yaml loads it as `vars` and walks it with `foreach`: every stage lists the code of its own kind
only, and `ingest` the user's files, so editing, replacing or appending to them reruns that task's
stages and nothing else. `dlops run` rewrites it before `dvc repro`; every stage and
`dlops check-params` stop, naming the command, when it no longer matches params.yaml.

`dlops dag` also writes reports/dvc.yaml: top-level plots only (DVC collects every dvc.yaml in the
repository), because which plots a model has depends on what it is trained for, and a `foreach` stage
declares the same plots for every entry. Each model gets its learning curves (train and val loss) and its
figures folder (confusion matrix, per-group bars, reconstruction or sample grids, attributions); a
classifier its calibration and confusion matrix; a forecaster predicted against actual; and each task one
ROC overlay of its classifiers (and one of its anomaly detectors). A model without a curve declares none.
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
PLOTS_HEADER = (
    "# Written by `dlops dag` from params.yaml: the plots `dvc plots show` and `dvc plots diff` draw.\n"
    "# Paths are relative to this folder. Do not edit: change params.yaml, then run `dlops dag`.\n"
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


def plots(params: Params) -> list[Any]:
    """reports/dvc.yaml's top-level plots for params, in params order (see the module docstring)."""
    from dlops.models.registry import pair_objectives

    declared: list[Any] = []
    overlays: dict[str, dict[str, str]] = {}  # title -> {roc file: field}
    for name, entry in params.models.items():
        objectives = pair_objectives(entry.family, params.tasks[entry.task].kind)
        out = f"evaluate/{name}"
        declared.append({
            f"train/{name}/history.json": {
                "x": "epoch", "y": ["train/loss", "val/loss"], "title": f"{name}: learning curves",
                "y_label": "loss",
            }
        })  # fmt: skip
        if "classifier" in objectives:
            declared.append({
                f"{out}/calibration.json": {
                    "x": "confidence", "y": "accuracy", "title": f"{name}: calibration (test)",
                    "x_label": "mean confidence", "y_label": "accuracy",
                }
            })  # fmt: skip
        if "forecaster" in objectives:
            declared.append({
                f"{out}/predictions.csv": {
                    "template": "scatter", "x": "actual", "y": "predicted",
                    "title": f"{name}: forecast against actual (test)",
                }
            })  # fmt: skip
        else:
            declared.append({
                f"{out}/predictions.csv": {
                    "template": "confusion", "x": "actual", "y": "predicted",
                    "title": f"{name}: confusion matrix (test)",
                }
            })  # fmt: skip
        for objective, what in (("classifier", "ROC of every classifier"), ("anomaly", "anomaly ROC")):
            if objective in objectives:
                overlays.setdefault(f"{entry.task}: {what} (test)", {})[f"{out}/roc.json"] = "tpr"
        declared.append(f"{out}/figures")  # PNGs: image plots
    for title, files in overlays.items():
        axes = {"x_label": "false positive rate", "y_label": "true positive rate"}
        declared.append({title: {"x": "fpr", "y": files, **axes}})
    return declared


def plots_text(params: Params) -> str:
    import yaml

    return PLOTS_HEADER + yaml.safe_dump({"plots": plots(params)}, sort_keys=False, default_flow_style=False)


def write(params: Params, p: Paths) -> bool:
    """Write dag.yaml and reports/dvc.yaml for params; True when either changed."""
    from dlops.files import write_text

    changed = False
    for path, new in ((p.dag, text(params, p.root)), (p.plots, plots_text(params))):
        if not (path.is_file() and path.read_text(encoding="utf-8") == new):
            write_text(path, new)
            changed = True
    return changed


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
