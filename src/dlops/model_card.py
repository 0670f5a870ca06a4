"""The model card of a registered version, assembled from the files the pipeline wrote and the decision.

`build_card` gathers; `dlops.evaluation.card` renders (Markdown for the version's description, HTML
with the figures embedded as an artifact). Everything here reads files; nothing talks to MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlops.gates import DIAGNOSIS_PREFIXES

if TYPE_CHECKING:
    from dlops.params import ModelEntry

LINEAGE_TAGS = (
    "git.commit",
    "git.dirty",
    "data.version",
    "data.test_split",
    "data.split",
    "params.hash",
    "pipeline.run_id",
    "prefect.flow_run_id",
    "host.device",
    "torch",
    "mlflow",
    "dlops.parent_model",  # a fine-tuned version: the model it started from
    "search.study",  # hyperparameters from a search: the study, its best trial, the gain over params.yaml
    "search.best_trial",
    "search.improvement",
)
METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "roc_auc",
    "ece",
    "anomaly_roc_auc",
    "anomaly_average_precision",
    "sample_accuracy",
    "worst_class_recall",
    "forecast_skill",  # forecasters: 1 - MASE, then the errors and the references
    "mase",
    "smape",
    "mae",
    "rmse",
    "snaive/mase",
    "naive/mase",
)
GAPS = ("demographic_parity_difference", "equalized_odds_difference", "error_gap")  # error: forecasters
DP_METRICS = ("epsilon", "delta", "noise_multiplier", "max_grad_norm")  # privacy/<name>, from DP-SGD
ATTACKS = {"loss threshold": "", "modified entropy": "_mentr"}  # privacy/membership<suffix>_auc ...
PII_EXPECTATION = "pii_screen"  # one row per screened column in the validation summary


FIGURE_SUFFIXES = (".png", ".svg", ".html")  # what the card shows of the figures folder


def build_card(
    *,
    pair: str,
    entry: ModelEntry,
    report: dict[str, Any],
    tags: dict[str, str],
    scores: dict[str, Any],
    eval_dir: Path,
    validation_summary: Path,
    params: dict[str, str],
) -> dict[str, Any]:
    """The card dict `dlops.evaluation.card` renders, for the version in `report` (tracking.register),
    from its tags, its evaluation `scores` (metrics.json) and the files in `eval_dir`."""
    card: dict[str, Any] = {
        "title": f"{report['model_name']} v{report['version']}",
        "summary": {
            "model": pair,
            "family": entry.family,
            "task": entry.task,
            "version": report["version"],
            "run_id": report.get("run_id", ""),
            "primary metric": report["primary_metric"],
        },
        "lineage": {key: tags[key] for key in LINEAGE_TAGS if key in tags},
        "validation": _validation(validation_summary),
        "params": params,
        "metrics": _metrics(scores),
        "fairness": _json(eval_dir / "fairness.json"),
        "fairness_gaps": _gaps(scores),
        "overfitting": {
            k.split("/", 1)[1] if k.startswith("overfit/") else k.replace("/", "_"): v
            for k, v in scores.items()
            if k.startswith(DIAGNOSIS_PREFIXES)
        },
        "privacy": _privacy(scores, _json(validation_summary)),
        "importance": _importance(_json(eval_dir / "interpretation.json")),
        "gates": report["checks"],
        "decision": {
            "verdict": report["verdict"],
            "reasons": _decisive_first(report),
            "by": "pipeline",
            "champion_before": report.get("champion_version"),
        },
        "figures": sorted(p for p in (eval_dir / "figures").glob("*") if p.suffix in FIGURE_SUFFIXES),
    }
    if report.get("comparison"):
        card["comparison"] = report["comparison"]
    mitigation = _json(eval_dir / "mitigation.json")
    if mitigation.get("rows"):
        post = mitigation.get("postprocess") or {}
        card["mitigation"] = {
            "method": " + ".join(
                [f"reweigh by {'&'.join(mitigation['reweigh'])}"] * bool(mitigation.get("reweigh"))
                + [post.get("method", "")]
            ),
            "constraint": post.get("constraint"),
            "rows": mitigation["rows"],
            "accuracy_cost": mitigation.get("accuracy_cost"),
        }
    elif mitigation.get("reweigh"):
        card["mitigation"] = {"method": f"reweigh by {'&'.join(mitigation['reweigh'])}", "rows": []}
    return {k: v for k, v in card.items() if v not in ({}, [], None)}


def _decisive_first(report: dict[str, Any]) -> list[str]:
    """Reasons with what decided first: failed gates, then the comparison, then the gates that passed."""
    reasons = list(report["reasons"])
    checks = report["checks"]
    gates, rest = reasons[: len(checks)], reasons[len(checks) :]
    failed = [r for r, c in zip(gates, checks, strict=False) if not c["passed"]]
    passed = [r for r, c in zip(gates, checks, strict=False) if c["passed"]]
    return failed + rest[::-1] + passed


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else {}


def _validation(path: Path) -> dict[str, Any]:
    summary = _json(path)
    if not summary:
        return {}
    rows = [
        {k: r.get(k) for k in ("expectation", "column", "severity", "success")}
        for r in summary.get("results", [])
    ]
    return {
        "suite": path.parent.name,
        "evaluated": summary.get("evaluated"),
        "failed_critical": summary.get("failed_critical"),
        "failed_warning": summary.get("failed_warning"),
        **_feature_duplicates(summary.get("feature_duplicates")),
        "rows": rows,
    }


def _privacy(scores: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """What the card's Privacy section shows: DP-SGD's budget, the membership audit, a generator's
    memorisation, the task's PII screen (findings without values) and what ingest did to identifiers."""
    found: dict[str, Any] = {}
    if scores.get("privacy/epsilon") is not None:
        found["differential_privacy"] = {name: scores.get(f"privacy/{name}") for name in DP_METRICS}
    if scores.get("privacy/membership_auc") is not None:
        found["membership"] = [
            {
                "attack": attack,
                "auc": scores.get(f"privacy/membership{suffix}_auc"),
                "ci_low": scores.get(f"privacy/membership{suffix}_auc/ci_low"),
                "ci_high": scores.get(f"privacy/membership{suffix}_auc/ci_high"),
                "tpr_at_1pct_fpr": scores.get(f"privacy/membership{suffix}_tpr_at_1pct_fpr"),
            }
            for attack, suffix in ATTACKS.items()
        ]
        found["membership_pairs"] = scores.get("privacy/membership_pairs")
    if scores.get("generate/memorization_ratio") is not None:
        found["memorization_ratio"] = scores["generate/memorization_ratio"]
    if summary.get("pii") is not None:  # absent or None: the screen was off
        found["pii"] = summary["pii"]
        screened = {
            r.get("column") for r in summary.get("results", []) if r.get("expectation") == PII_EXPECTATION
        }
        found["pii_screened_columns"] = len(screened)
    if summary.get("identifiers"):
        found["identifiers"] = summary["identifiers"]
    return found


def _feature_duplicates(found: dict[str, Any] | None) -> dict[str, str]:
    """A tabular task's rows that repeat another's features (not an error: kept in one split)."""
    if not found:
        return {}
    share = f"{found['rows']} rows ({100 * found['fraction']:.1f}%), kept in one split"
    return {"feature-identical rows": share}


def _metrics(scores: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in METRICS:
        key = f"test/{name}"
        if scores.get(key) is None:
            continue
        rows.append(
            {
                "name": key,
                "value": scores[key],
                "ci_low": scores.get(f"{key}/ci_low"),
                "ci_high": scores.get(f"{key}/ci_high"),
            }
        )
    return rows


def _gaps(scores: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, value in scores.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "fairness" and parts[2] in GAPS and value is not None:
            rows.append(
                {
                    "attribute": parts[1],
                    "metric": parts[2],
                    "value": value,
                    "ci_low": scores.get(f"{key}/ci_low"),
                    "ci_high": scores.get(f"{key}/ci_high"),
                }
            )
    return sorted(rows, key=lambda r: (r["attribute"] != "max", r["attribute"], r["metric"]))


def _importance(details: dict[str, Any]) -> list[dict[str, Any]]:
    proxies = set(details.get("proxy_features") or []) | set(details.get("sensitive_in_inputs") or [])
    return [{**row, "proxy": row["feature"] in proxies} for row in details.get("importance") or []]
