"""`dlops schedule`: serve the `retrain` flow on the cron of params `retrain.schedule`, and the
`drift-monitor` flow (on `retrain.drift.schedule` when set, else on demand), against the Prefect server
at PREFECT_API_URL. One process; it polls the server for due and triggered runs until stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RETRAIN = "retrain/scheduled"
MONITOR = "drift-monitor/monitor"


def deployments(root: Path | None = None) -> list[Any]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.schedules import Cron

    from dlops.config import load_params, paths
    from pipelines.monitor import drift_monitor
    from pipelines.retrain import retrain

    p = paths(root)
    params = load_params(p.params).retrain
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy="ENQUEUE")
    weekly = retrain.to_deployment(
        name=RETRAIN.split("/")[1],
        schedules=[Cron(params.schedule.cron, timezone=params.schedule.timezone)],
        parameters={"root": str(p.root), "scheduled": True},
        concurrency_limit=one_at_a_time,
        tags=["dlops"],
        description="New batches from params retrain.batches, the DAG, the gates, push, report.",
    )
    monitor_schedule = params.drift.schedule
    monitor = drift_monitor.to_deployment(
        name=MONITOR.split("/")[1],
        schedules=[Cron(monitor_schedule.cron, timezone=monitor_schedule.timezone)]
        if monitor_schedule
        else [],
        parameters={"root": str(p.root)},
        tags=["dlops"],
        description="Drift of new batches against the training data; retrains on drift.",
    )
    return [weekly, monitor]


def describe(root: Path | None = None) -> dict[str, Any]:
    from dlops.config import load_params, paths

    params = load_params(paths(root).params).retrain
    drift = params.drift.schedule
    return {
        RETRAIN: {
            "cron": params.schedule.cron,
            "timezone": params.schedule.timezone,
            "batches": params.batches,
        },
        MONITOR: {"cron": drift.cron if drift else None, "threshold": params.drift.psi_threshold},
    }


def serve_all(root: Path | None = None) -> None:
    import os

    from prefect import serve

    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise RuntimeError(
                "PREFECT_API_URL is not set: start a server (`make prefect-server`) and export "
                "PREFECT_API_URL=http://127.0.0.1:4200/api (schedules need a server that stays up)"
            )
    serve(*deployments(root))
