"""Hyperparameter search (stage `search`): Optuna's TPE over `models.<pair>.search.space`, poor trials
pruned from their per-epoch validation scores, each trial an MLflow child run under one parent run.

Trials train on the train split and are scored on the val split; nothing here reads the test split, and
no trial is evaluated, gated or registered: `train` retrains with the best values and only that model
goes on. The study lives in an Optuna storage (SQLite under .dlops/ by default; `search.storage` or
DLOPS_OPTUNA_STORAGE for a shared PostgreSQL) under a name made from everything a trial depends on, so
workers in other processes or machines join the same study and an interrupted search resumes it.

The study's first trial is params.yaml's own values, so the report says how far the best beats them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.params import ModelEntry, SearchConfig, SearchParam, TrainConfig, params_hash

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
STORAGE_ENV = "DLOPS_OPTUNA_STORAGE"
DEFAULT_ATTR = "dlops.default"  # user attribute of the trial that ran params.yaml's values
VALUES_ATTR = "dlops.values"  # user attribute: the trial's values as train/model take them (JSON)
_PRIMITIVE = (type(None), bool, int, float, str)


# ------------------------------------------------------------------------------------------- values
def apply(entry: ModelEntry, values: dict[str, Any]) -> ModelEntry:
    """`entry` with searched values (`train.lr`, `model.dropout`, ...) in place of params.yaml's."""
    train = entry.train.model_dump()
    model = dict(entry.model)
    for key, value in values.items():
        section, _, name = key.partition(".")
        (train if section == "train" else model)[name] = value
    return entry.model_copy(update={"train": TrainConfig.model_validate(train), "model": model})


def current_values(entry: ModelEntry, search: SearchConfig) -> dict[str, Any]:
    """params.yaml's value of every searched key."""
    values = {}
    for key in search.space:
        section, _, name = key.partition(".")
        values[key] = getattr(entry.train, name) if section == "train" else entry.model[name]
    return values


def _encoded(spec: SearchParam) -> bool:
    """Choices Optuna cannot store as they are (lists such as hidden sizes) are searched as JSON text."""
    return spec.choices is not None and not all(isinstance(c, _PRIMITIVE) for c in spec.choices)


def _internal(spec: SearchParam, value: Any) -> Any:
    return json.dumps(value) if _encoded(spec) else value


def suggest(trial: optuna.Trial, space: dict[str, SearchParam]) -> dict[str, Any]:
    """One value per searched key from the trial's sampler."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        if spec.choices is not None:
            picked = trial.suggest_categorical(key, [_internal(spec, c) for c in spec.choices])
            values[key] = json.loads(str(picked)) if _encoded(spec) else picked
        elif spec.is_int:
            step = 1 if spec.step is None else int(spec.step)
            values[key] = trial.suggest_int(
                key, int(spec.low or 0), int(spec.high or 0), step=step, log=spec.log
            )
        else:
            low, high = float(spec.low or 0.0), float(spec.high or 0.0)
            values[key] = trial.suggest_float(key, low, high, step=spec.step, log=spec.log)
    return values


# -------------------------------------------------------------------------------------------- study
def study_name(pair: str, entry: ModelEntry, augment: dict[str, Any], data_digest: str) -> str:
    """`<pair>-<hash>` of what a trial's score depends on: the space, objective, pruner and seed, the
    model and train settings, the task's augmentation and the train/val data. The budget (trials,
    timeout, workers) and the storage are left out, so a larger budget continues the same study."""
    assert entry.search is not None
    search = entry.search.model_dump(mode="json", exclude={"trials", "timeout_s", "workers", "storage"})
    digest = {
        "search": search,
        "family": entry.family,
        "model": entry.model,
        "train": entry.train.model_dump(mode="json"),
        "augment": augment,
        "data": data_digest,
    }
    return f"{pair}-{params_hash(digest)}"


def storage_url(search: SearchConfig, default: str) -> str:
    return os.environ.get(STORAGE_ENV) or search.storage or default


def open_study(name: str, url: str, search: SearchConfig, worker: int, create: bool) -> optuna.Study:
    """The study `name` in the storage at `url` (created when `create`), with a TPE sampler seeded per
    worker (so parallel workers propose different trials) and the median pruner."""
    import optuna
    from optuna.storages import RDBStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # SQLite: wait for the file lock instead of failing when several workers write at once
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    storage = RDBStorage(url, engine_kwargs=engine)
    startup = max(1, min(10, search.trials // 3))  # random first, then TPE
    sampler = optuna.samplers.TPESampler(seed=search.seed + worker, n_startup_trials=startup)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=search.pruner.startup_trials, n_warmup_steps=search.pruner.warmup_epochs
    )
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            raise LookupError(
                f"no study {name!r} in the Optuna storage: start `dlops search` for this pair first (with "
                "the same params and data), then join it"
            ) from None
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction=search.direction,
        load_if_exists=True,
    )


def prepare(study: optuna.Study, entry: ModelEntry) -> None:
    """Before the workers start: trials left RUNNING by a killed worker are marked FAIL, and params.yaml's
    values are queued as a trial unless one already ran them."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.warning("search: trial %d was left running by an interrupted worker; marked FAIL", trial.number)
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    done = (TrialState.COMPLETE, TrialState.WAITING, TrialState.PRUNED)
    if not any(t.user_attrs.get(DEFAULT_ATTR) for t in study.get_trials(deepcopy=False, states=done)):
        assert entry.search is not None
        values = current_values(entry, entry.search)
        fixed = {key: _internal(entry.search.space[key], value) for key, value in values.items()}
        study.enqueue_trial(fixed, user_attrs={DEFAULT_ATTR: True})


_COUNTED = ("COMPLETE", "PRUNED", "FAIL")


def trials_done(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=tuple(TrialState[s] for s in _COUNTED)))


def optimize(study: optuna.Study, search: SearchConfig, objective: Callable[[optuna.Trial], float]) -> None:
    """Run trials until the study holds `search.trials` finished ones (this worker's and everyone's) or
    `timeout_s` has passed. Parallel workers may overshoot by the trials running when the count is hit."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if trials_done(study) >= search.trials:
        return
    counted = tuple(TrialState[s] for s in _COUNTED)
    study.optimize(
        objective, timeout=search.timeout_s, callbacks=[MaxTrialsCallback(search.trials, states=counted)]
    )


# ------------------------------------------------------------------------------------------ a trial
@dataclass
class Trainer:
    """What a trial needs from the stage: `fit(entry, logger)` builds the entry's model (seeded as `train`
    seeds it), trains it on the loaded train split, scores epochs on val, returns the loop's TrainResult."""

    fit: Callable[[ModelEntry, Any], Any]
    run: Callable[..., Any]  # tracking.training_run
    parent_run_id: str
    pair: str
    worker: int = 0


class _Pruned(Exception):
    """Raised from the epoch logger; turned into optuna.TrialPruned outside the MLflow run's block."""


class _TrialReporter:
    """The loop's epoch logger for a trial: logs to the trial's MLflow run, reports the objective to
    Optuna and stops the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, run: Any, objective: str) -> None:
        self.trial, self.run, self.objective, self.epoch = trial, run, objective, 0

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        self.run.log_epoch(metrics, step)
        self.epoch = step
        value = metrics.get(self.objective)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise _Pruned


def make_objective(entry: ModelEntry, trainer: Trainer) -> Callable[[optuna.Trial], float]:
    search = entry.search
    assert search is not None

    def objective(trial: optuna.Trial) -> float:
        import optuna

        values = suggest(trial, search.space)
        trial.set_user_attr(VALUES_ATTR, json.dumps(values, sort_keys=True))
        candidate = apply(entry, values)
        if search.epochs is not None and "train.epochs" not in values:
            candidate = candidate.model_copy(
                update={"train": candidate.train.model_copy(update={"epochs": search.epochs})}
            )
        tags = {
            "mlflow.parentRunId": trainer.parent_run_id,
            "dlops.search.trial": str(trial.number),
            "dlops.search.worker": str(trainer.worker),
        }
        run_params = {
            "trial": values,
            "train": candidate.train.model_dump(mode="json"),
            "model": candidate.model,
        }
        name = f"{trainer.pair} trial {trial.number}"
        value, pruned = math.nan, False
        with trainer.run(trainer.pair, entry.task, entry.family, run_params, tags, run_name=name) as run:
            reporter = _TrialReporter(trial, run, search.objective)
            try:
                result = trainer.fit(candidate, reporter)
            except _Pruned:
                pruned = True
                run.set_tags({"search.state": "PRUNED", "search.pruned_at_epoch": reporter.epoch})
            else:
                value = float(result.history[result.best_epoch - 1].get(search.objective, math.nan))
                run.set_tags(
                    {"search.state": "COMPLETE", "search.value": value, "train.best_epoch": result.best_epoch}
                )
        if pruned:
            raise optuna.TrialPruned(f"pruned at epoch {reporter.epoch}")
        return value

    return objective


# ------------------------------------------------------------------------------------------ summary
def summary(study: optuna.Study, entry: ModelEntry, name: str) -> dict[str, Any]:
    """What `train` reads and a reviewer diffs: the best trial's values (ties: the earliest trial), its
    score, params.yaml's score, and the trial counts. Nothing that depends on timing."""
    from optuna.trial import TrialState

    search = entry.search
    assert search is not None
    trials = study.get_trials(deepcopy=False)
    complete = [
        t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    if not complete:
        raise RuntimeError(
            f"search {name}: no trial completed with a finite {search.objective}; nothing to train"
        )
    sign = 1.0 if search.direction == "minimize" else -1.0
    best = min(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))
    default = next((t for t in complete if t.user_attrs.get(DEFAULT_ATTR)), None)
    counts = {state.lower(): sum(t.state == TrialState[state] for t in trials) for state in _COUNTED}
    default_value = None if default is None else float(default.value or 0.0)
    best_value = float(best.value or 0.0)
    return {
        "study": name,
        "objective": search.objective,
        "direction": search.direction,
        "trials": {"total": sum(counts.values()), **counts},
        "best": {
            "trial": best.number,
            "value": best_value,
            "params": json.loads(best.user_attrs[VALUES_ATTR]),
        },
        "default": {
            "params": current_values(entry, search),
            "value": default_value,
        },
        # how much better than params.yaml's values on val (positive: better; 0: the defaults were best)
        "improvement": None if default_value is None else sign * (default_value - best_value),
    }


def write_figures(study: optuna.Study, folder: Path) -> list[str]:
    """Optimization history, parameter importances and the trials' learning curves (pruned ones stop
    early) as PNGs, and every trial as trials.csv; a plot Optuna cannot draw yet is skipped, logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as optuna_plots

    folder.mkdir(parents=True, exist_ok=True)
    study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
    written = []
    plots: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(study),
        "param_importances": lambda: optuna_plots.plot_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0)
        ),
        "intermediate_values": lambda: optuna_plots.plot_intermediate_values(study),
    }
    for name, draw in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            log.info("search: no %s plot (%s)", name, exc)
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(name)
    return written


def importances(study: optuna.Study) -> dict[str, float]:
    """fANOVA importance of each searched key (seeded); empty when there are too few trials."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        return dict(get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0)))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}
