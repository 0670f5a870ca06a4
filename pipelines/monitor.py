"""The `drift-monitor` Prefect flow: compare new batches with the data today's models were trained on,
report, and start the `retrain` flow with the drifted batches when drift passes
`retrain.drift.psi_threshold` (and `retrain.drift.retrain_on_drift` is on).

Each report is a file (`reports/drift/<task>/<batch>.{json,md}`), an MLflow run in the
`<experiment>-monitoring` experiment, and a Prefect markdown artifact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from pipelines.retrain import (
    PREFECT_LOGGERS,
    PROJECT_ROOT,
    _environment,
    _notify_failure,
    check_drift,
    retrain,
)


@flow(name="drift-monitor", log_prints=True, on_failure=[_notify_failure], on_crashed=[_notify_failure])
def drift_monitor(
    root: str = "", batches: dict[str, dict[str, Any]] | None = None, date: str | None = None
) -> dict[str, Any]:  # root empty: the checkout this flow file sits in
    """Drift reports for the given batches (default: params `retrain.batches`); retrain on drift."""
    from prefect.runtime import flow_run

    from dlops.params import load_params
    from dlops.redact import install

    install(*PREFECT_LOGGERS)
    root = root or str(PROJECT_ROOT)
    params = load_params(Path(root) / "params.yaml")
    chosen = dict(batches or {}) or dict(params.retrain.batches)
    if not chosen:
        raise ValueError("no batches to check: pass `batches` or set params retrain.batches")
    env = _environment(root, flow_run.get_id())
    reports = {name: check_drift(name, spec, date, root, env) for name, spec in sorted(chosen.items())}
    drifted = {name: chosen[name] for name, report in reports.items() if report.get("drifted")}
    lines = ["# Drift monitor", ""]
    for name, report in reports.items():
        lines += [report.get("markdown") or f"{name}: {report.get('error')}", ""]
    action = "no drift: nothing to do"
    if drifted:
        action = f"drift in {sorted(drifted)}: " + (
            "retraining started" if params.retrain.drift.retrain_on_drift else "retrain_on_drift is off"
        )
    lines.append(f"**Action**: {action}")
    create_markdown_artifact(markdown="\n".join(lines), key="drift-report", description="drift monitor")
    summary: dict[str, Any] = {"drifted": sorted(drifted), "reports": reports, "action": action}
    if drifted and params.retrain.drift.retrain_on_drift:
        summary["retrain"] = retrain(root=root, batches=drifted, date=date)
    return summary


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    drift_monitor()
