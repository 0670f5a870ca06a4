"""One table across tasks and families: each model's test metrics (with intervals), fairness gaps,
mitigation cost, privacy (membership-inference AUC; ε when trained with DP-SGD, blank otherwise), and
where it stands in the registry. `dlops leaderboard` prints it; `--log` also
records it as one MLflow run per pipeline run (tagged with the pipeline run id) holding the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlops import tracking
from dlops.params import MlflowConfig
from dlops.tracking import TAG_MAX_CHARS, log_report_run, model_name, quote, version_by_alias

COLUMNS = ("model", "task", "family", "primary", "value", "ci", "dp_gap", "eo_gap", "mase", "mitigation_cost",
           "membership_auc", "epsilon", "champion", "latest", "decision")  # fmt: skip
NUMERIC = ("value", "dp_gap", "eo_gap", "membership_auc", "epsilon")  # right-aligned in the printed table


def rows(params: Any, eval_dir: Any, registry: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model in params, best primary metric first within each task."""
    out = []
    for pair, entry in params.models.items():
        path = Path(eval_dir(pair)) / "metrics.json"
        scores = json.loads(path.read_text()) if path.is_file() else {}
        key = f"test/{entry.gates.primary_metric}"
        low, high = scores.get(f"{key}/ci_low"), scores.get(f"{key}/ci_high")
        state = registry.get(pair, {})
        out.append(
            {
                "model": pair,
                "task": entry.task,
                "family": entry.family,
                "primary": entry.gates.primary_metric,
                "value": scores.get(key),
                "ci": None if low is None or high is None else [low, high],
                "dp_gap": scores.get("fairness/max/demographic_parity_difference"),
                "mase": scores.get("test/mase"),  # forecasters
                "eo_gap": scores.get("fairness/max/equalized_odds_difference"),
                "mitigation_cost": scores.get("mitigation/accuracy_cost"),
                "membership_auc": scores.get("privacy/membership_auc"),  # classifiers
                "epsilon": scores.get("privacy/epsilon"),  # DP-SGD only
                "champion": state.get("champion"),
                "latest": state.get("latest"),
                "decision": state.get("decision"),
            }
        )
    return sorted(out, key=lambda r: (r["task"], -(r["value"] if r["value"] is not None else -1), r["model"]))


def markdown(table: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |\n" for row in table)


def print_table(table: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title="dlops leaderboard (test split)")
    for column in COLUMNS:
        view.add_column(column, justify="right" if column in NUMERIC else "left")
    for row in table:
        view.add_row(*(_cell(row[c]) for c in COLUMNS))
    Console(width=200).print(view)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def registry_state(pairs: list[str], cfg: MlflowConfig) -> dict[str, dict[str, Any]]:
    """Per pair: the @champion version, the newest version and that version's decision."""
    client = tracking.client()
    state: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        name = model_name(pair, cfg)
        found = client.search_model_versions(f"name = '{quote(name)}'")
        if not found:
            continue
        latest = max(found, key=lambda mv: int(mv.version))
        champion = version_by_alias(client, name, "champion")
        state[pair] = {
            "champion": f"v{champion.version}" if champion else None,
            "latest": f"v{latest.version}",
            "decision": latest.tags.get("decision"),
        }
        if latest.tags.get("control"):  # built to fail a gate: rejected is the expected outcome
            state[pair]["decision"] = f"{state[pair]['decision']} (control: {latest.tags['control']})"
    return state


def log_leaderboard(table: list[dict[str, Any]], markdown: str) -> str:
    """One MLflow run named `leaderboard` per pipeline run: the table as JSON and Markdown artifacts,
    each model's primary metric as a metric. Returns the run id."""
    numbers = {
        f"{row['model']}/{row['primary']}": float(row["value"])
        for row in table
        if isinstance(row.get("value"), int | float)
    }
    return log_report_run(
        "leaderboard",
        {"dlops.kind": "leaderboard", "mlflow.note.content": markdown[:TAG_MAX_CHARS]},
        numbers,
        {"leaderboard.json": json.dumps(table, indent=2, sort_keys=True), "leaderboard.md": markdown},
    )
