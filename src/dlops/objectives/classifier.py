"""Evaluation of a classifier (tabular, image or text): metrics on every split with bootstrap intervals
on the test split, fairness per attribute and per intersection of attributes, the mitigation report,
the overfitting diagnosis and plots (what only one kind adds is its Kind's `evaluate_classifier`).

Decisions are what the registered model serves: the argmax of the network, or the fair thresholds of
`evaluate.postprocess` fitted on the validation split. Score metrics (ROC AUC, log loss, ECE) read the
network's probabilities either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlops.files import write_json
from dlops.objectives.base import Served

if TYPE_CHECKING:
    from dlops.kinds.base import Kind
    from dlops.params import ModelEntry, Paths, TaskConfig

log = logging.getLogger(__name__)

Split = tuple[Any, np.ndarray, dict[str, np.ndarray]]  # (x, y, {attribute: group labels})
COMPARED = ("accuracy", "balanced_accuracy")  # before/after columns of the mitigation report
FAIR_GAPS = ("demographic_parity_difference", "equalized_odds_difference")


def evaluate(
    model: Any,
    p: Paths,
    kind: Kind,
    entry: ModelEntry,
    splits: dict[str, Split],
    classes: list[str],
    history: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    """Every score of a classifier, with what its task kind adds (interpretation, attributions, tests)."""
    from dlops.evaluation.overfitting import given_test_split
    from dlops.training.loop import predict_proba

    given = given_test_split(json.loads(p.transform(entry.task).read_text(encoding="utf-8")))
    scores, test = evaluate_classifier(
        lambda x: predict_proba(model, x), entry, splits, classes, history, out, test_given=given
    )
    scores.update(kind.evaluate_classifier(model, p, entry, classes, test, out))
    return scores


def evaluate_classifier(
    predict: Callable[[Any], np.ndarray],
    entry: ModelEntry,
    splits: dict[str, Split],
    classes: list[str],
    history: dict[str, Any],
    out: Path,
    *,
    test_given: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every score of the classifier, and the test split's arrays (x, y, proba, y_pred, groups).
    `test_given`: the test split is the dataset's own, so overfitting is judged on train − val."""
    # here, not at the top: `register` imports this module for serving() and needs none of them (1 s)
    from dlops.evaluation import metrics, overfitting, plots

    proba = {name: predict(split[0]) for name, split in splits.items()}
    decisions, mitigation = _decisions(entry, splits, proba, classes, out)
    scores: dict[str, Any] = {}
    for name, (_, y, _) in splits.items():
        scores.update(metrics.classification_metrics(y, proba[name], classes, name, decisions[name]))
    x, y, groups = splits["test"]
    test = {"x": x, "y": y, "proba": proba["test"], "y_pred": decisions["test"], "groups": groups}
    tables = _fairness(scores, entry, test, len(classes))
    scores.update(mitigation.pop("flat"))
    balanced, worst = scores.get("test/balanced_accuracy"), scores.get("test/worst_class_recall")
    if balanced is not None and worst is not None:  # the task's bias measure when no group is known
        scores["bias/class_recall_gap"] = round(balanced - worst, 6)
    gap_limit = entry.gates.max_overfit_gap
    gap_limit = overfitting.DEFAULT_GAP if gap_limit is None else gap_limit  # diagnosis even if not gated
    scores.update(
        overfitting.diagnose(history, scores, entry.gates.primary_metric, gap_limit, test_given=test_given)
    )
    scores.update(_membership(splits, proba, entry.train.seed))
    write_json(out / "fairness.json", tables)
    write_json(out / "mitigation.json", mitigation)
    write_json(out / "confusion.json", metrics.confusion(y, test["y_pred"], classes))
    plots.write_plot_data(out, y, test["proba"], classes, history, test["y_pred"])
    plots.write_plots(out / "figures", y, test["proba"], classes, history, tables, test["y_pred"])
    return scores, test


def _membership(splits: dict[str, Split], proba: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """The membership-inference audit on the probabilities already computed: training rows against
    test rows (dlops.privacy.membership)."""
    from dlops.privacy import membership

    if "train" not in splits or "test" not in splits:
        return {}
    return membership.audit(proba["train"], splits["train"][1], proba["test"], splits["test"][1], seed=seed)


def _decisions(
    entry: ModelEntry, splits: dict[str, Split], proba: dict[str, np.ndarray], classes: list[str], out: Path
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-split decisions, and the mitigation report (before/after on test; `flat` for metrics.json)."""
    argmax = {name: p.argmax(axis=1) for name, p in proba.items()}
    report: dict[str, Any] = {"reweigh": list(entry.train.reweigh), "postprocess": None, "flat": {}}
    cfg = entry.evaluate.postprocess
    if cfg is None:
        return argmax, report
    if len(classes) != 2:
        raise ValueError(
            f"evaluate.postprocess: fair thresholds need a binary task; {entry.task!r} has classes {classes}"
        )
    from dlops.mitigation import fit_thresholds, joint_groups

    _, y_val, groups_val = splits["val"]
    thresholds = fit_thresholds(
        proba["val"][:, 1],
        y_val,
        joint_groups(groups_val, cfg.attributes),
        constraint=cfg.constraint,
        objective=cfg.objective,
        attributes=cfg.attributes,
        tol=cfg.tol,
    )
    decisions = {
        name: thresholds.predict(proba[name][:, 1], joint_groups(groups, cfg.attributes), x)
        for name, (x, _, groups) in splits.items()
    }
    _, y, groups = splits["test"]
    before = _summary(y, argmax["test"], groups)
    after = _summary(y, decisions["test"], groups)
    cost = round(before["accuracy"] - after["accuracy"], 6)
    report.update(
        postprocess=cfg.model_dump(mode="json"),
        thresholds=thresholds.__dict__,  # what the registered model applies (dlops.mitigation)
        rows=[{"variant": "unmitigated", **before}, {"variant": "mitigated", **after}],
        accuracy_cost=cost,
    )
    report["flat"] = {f"mitigation/before/{k}": v for k, v in before.items()}
    report["flat"]["mitigation/accuracy_cost"] = cost
    log.info("evaluate: fair thresholds (%s) cost %.4f accuracy; before %s after %s", cfg.constraint, cost,
             before, after)  # fmt: skip
    return decisions, report


def _summary(y: np.ndarray, y_pred: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from dlops.evaluation import fairness

    flat, _ = fairness.fairness_report(y, y_pred, groups, num_classes=2)
    row: dict[str, Any] = {
        "accuracy": round(float(accuracy_score(y, y_pred)), 6),
        "balanced_accuracy": round(float(balanced_accuracy_score(y, y_pred)), 6),
    }
    row.update({gap: flat.get(f"fairness/max/{gap}") for gap in FAIR_GAPS})
    return row


def _fairness(
    scores: dict[str, Any], entry: ModelEntry, test: dict[str, Any], num_classes: int
) -> dict[str, list[dict[str, Any]]]:
    """Fairness per attribute and per intersection of all attributes (reported, not in `fairness/max`),
    with bootstrap intervals on every gap and on accuracy / balanced accuracy / ROC AUC."""
    from dlops.evaluation import fairness, uncertainty
    from dlops.mitigation import GROUP_JOIN, joint_groups

    y, y_pred, groups = test["y"], test["y_pred"], test["groups"]
    flat, tables = fairness.fairness_report(y, y_pred, groups, num_classes=num_classes)
    scores.update(flat)
    joint: dict[str, np.ndarray] = {}
    if len(groups) >= 2:
        name = GROUP_JOIN.join(groups)
        joint = {name: joint_groups(groups, list(groups))}
        joint_flat, joint_tables = fairness.fairness_report(y, y_pred, joint, num_classes=num_classes)
        scores.update({k: v for k, v in joint_flat.items() if not k.startswith("fairness/max/")})
        tables.update(joint_tables)
    n_boot, confidence = entry.evaluate.bootstrap, entry.evaluate.confidence
    if n_boot:
        seed = entry.train.seed
        scores["bootstrap/resamples"], scores["bootstrap/confidence"] = n_boot, confidence
        scores.update(
            uncertainty.metric_intervals(y, test["proba"], n_boot, confidence, seed, "test", y_pred=y_pred)
        )
        if groups:
            scores.update(
                uncertainty.gap_intervals(y, y_pred, groups, num_classes, 30, n_boot, confidence, seed)
            )
        if joint:
            for key, value in uncertainty.gap_intervals(
                y, y_pred, joint, num_classes, 30, n_boot, confidence, seed
            ).items():
                if not key.startswith("fairness/max/"):
                    scores[key] = value
    return tables


# ------------------------------------------------------------------------------------------------ serving
def serving(p: Paths, kind: Kind, entry: ModelEntry, task_cfg: TaskConfig, pair: str) -> Served:
    """The kind's classifier pyfunc with its artifacts (and the fair thresholds when fitted), and how to
    score a champion on today's test inputs: its primary metric and its per-row decisions."""
    served = kind.serving_inputs(p, entry, task_cfg, pair)
    artifacts: dict[str, Path] = {"checkpoint": p.checkpoint(pair), **served.artifacts}
    example = served.example
    mitigation = json.loads((p.eval_dir(pair) / "mitigation.json").read_text())
    if mitigation.get("thresholds"):
        artifacts["fair_thresholds"] = p.eval_dir(pair) / "mitigation.json"
        example = served.inputs.head(20)  # the sensitive columns choose each row's thresholds
    primary = entry.gates.primary_metric

    def predict(model_uri: str) -> Any:
        return _load_pyfunc(model_uri).predict(served.inputs)

    def score(model_uri: str) -> float:
        return _score_frame(predict(model_uri), served.truth, primary, by_index=served.by_index)

    paired = _paired_rows(p, entry.task, pair, lambda uri: predict(uri)["prediction"])
    return Served(served.pyfunc, artifacts, example, score, paired, served.tabular_signature)


def _paired_rows(p: Paths, task: str, pair: str, predict_names: Any) -> Any:
    """The candidate's test decisions (predictions.csv) and a champion's on the same rows, as indices."""
    import numpy as np
    import pandas as pd

    from dlops.tracking import PairedRows

    table = pd.read_csv(p.eval_dir(pair) / "predictions.csv", dtype=str, keep_default_na=False)
    classes = json.loads(p.transform(task).read_text())["classes"]
    index = {str(c): i for i, c in enumerate(classes)}

    def as_index(names: Any) -> Any:
        return np.array([index.get(str(n), -1) for n in names])

    return PairedRows(
        y_true=as_index(table["actual"]),
        candidate=as_index(table["predicted"]),
        predict=lambda uri: as_index(predict_names(uri)),
    )


def _load_pyfunc(model_uri: str) -> Any:
    """The champion being compared, from the project's registry, after its checkpoint's sha256 check."""
    from dlops.tracking import load_registered

    return load_registered(model_uri)


def _score_frame(out: Any, truth: Any, primary: str, by_index: bool = False) -> float:
    """The primary metric of a pyfunc's output frame against the true classes (names, or indices)."""
    import numpy as np

    from dlops.evaluation.metrics import classification_metrics

    classes = [c[len("proba_") :] for c in out.columns if c.startswith("proba_")]
    index = {name: i for i, name in enumerate(classes)}
    y = np.asarray(truth) if by_index else np.array([index.get(str(v), -1) for v in truth])
    keep = y >= 0
    proba = out[[f"proba_{c}" for c in classes]].to_numpy()[keep]
    decided = np.array([index[str(v)] for v in out["prediction"]])[keep]
    scores = classification_metrics(y[keep], proba, classes, prefix="test", y_pred=decided)
    return float(scores[f"test/{primary}"])
