"""`dlops schedule`: the `retrain` flow on the cron of params `retrain.schedule`, and the `drift-monitor`
flow (on `retrain.drift.schedule` when set, else on demand), against the Prefect server at
PREFECT_API_URL. Two ways to run them, one definition (`_definitions`):

- `serve_all` (`dlops schedule`): one process serves both deployments; it polls the server for due and
  triggered runs until stopped, and runs them itself.
- `deploy_to_pool` (`dlops schedule --work-pool POOL [--source SRC]`): registers the same deployments
  into a Prefect `process` work pool (created when missing) and exits; `prefect worker start --pool POOL`
  on any machine runs them, from the code in SRC: a directory every worker has at that path (default:
  the project root) or a git repository each flow run clones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

RETRAIN = "retrain/scheduled"
MONITOR = "drift-monitor/monitor"
# The flows as a worker loads them: paths relative to the source (the project root or the git checkout).
ENTRYPOINTS = {RETRAIN: "pipelines/retrain.py:retrain", MONITOR: "pipelines/monitor.py:drift_monitor"}
POOL_TYPE = "process"  # a worker runs each flow run as a subprocess of itself: no image, no container


class WorkPoolTypeError(ValueError):
    """The named work pool exists, with a type whose workers do not run code from a directory or git."""


def _definitions(root: Path | None = None, *, root_parameter: str | None = None) -> dict[str, dict[str, Any]]:
    """The keyword arguments of `to_deployment` for each deployment (`RETRAIN`, `MONITOR`): names,
    schedules, parameters, concurrency limit, tags, descriptions. `root_parameter` is the `root` the flows
    get (default: the project root); `""` leaves it out, so a flow uses its own checkout (PROJECT_ROOT)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.schedules import Cron

    from dlops.params import load_params, paths

    p = paths(root)
    params = load_params(p.params).retrain
    chosen_root = str(p.root) if root_parameter is None else root_parameter
    at_root = {"root": chosen_root} if chosen_root else {}
    monitor_schedule = params.drift.schedule
    return {
        RETRAIN: dict(
            name=RETRAIN.split("/")[1],
            schedules=[Cron(params.schedule.cron, timezone=params.schedule.timezone)],
            parameters={**at_root, "scheduled": True},
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy="ENQUEUE"),
            tags=["dlops"],
            description="New batches from params retrain.batches, the DAG, the gates, push, report.",
        ),
        MONITOR: dict(
            name=MONITOR.split("/")[1],
            schedules=[Cron(monitor_schedule.cron, timezone=monitor_schedule.timezone)]
            if monitor_schedule
            else [],
            parameters=at_root,
            tags=["dlops"],
            description="Drift of new batches against the training data; retrains on drift.",
        ),
    }


def deployments(root: Path | None = None) -> list[Any]:
    """The two deployments of the flows imported here, for `serve`."""
    from pipelines.monitor import drift_monitor
    from pipelines.retrain import retrain

    flows: dict[str, Any] = {RETRAIN: retrain, MONITOR: drift_monitor}
    return [flows[name].to_deployment(**kwargs) for name, kwargs in _definitions(root).items()]


def describe(root: Path | None = None) -> dict[str, Any]:
    from dlops.params import load_params, paths

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


def _require_api_url() -> None:
    import os

    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise RuntimeError(
                "PREFECT_API_URL is not set: start a server (`make prefect-server`) and export "
                "PREFECT_API_URL=http://127.0.0.1:4200/api (schedules need a server that stays up)"
            )


def serve_all(root: Path | None = None) -> None:
    from prefect import serve

    _require_api_url()
    serve(*deployments(root))


def ensure_process_pool(pool: str) -> bool:
    """The work pool `pool` of type `process`: created (with the process worker's default base job
    template) when missing, and then True; False when it exists. WorkPoolTypeError when it exists with
    another type (a docker or kubernetes pool runs images, not a directory or a git checkout)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            try:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=pool,
                        type=POOL_TYPE,
                        base_job_template=template,
                        description="dlops flows (`dlops schedule --work-pool`)",
                    )
                )
                return True
            except ObjectAlreadyExists:  # created by someone else meanwhile
                found = client.read_work_pool(pool)
    if found.type != POOL_TYPE:
        raise WorkPoolTypeError(
            f"work pool {pool!r} exists with type {found.type!r}, not {POOL_TYPE!r}: its workers run "
            f"images, not the project's code from a directory or git; name another pool (it is created "
            f"as type {POOL_TYPE!r}) or remove this one (`prefect work-pool delete {pool}`)"
        )
    return False


def deploy_to_pool(pool: str, root: Path | None = None, source: str | None = None) -> dict[str, Any]:
    """Register the deployments of `serve_all` into the `process` work pool `pool` (created when missing)
    instead of serving them; workers (`prefect worker start --pool POOL`) run them.

    `source` is where a worker finds the code: a local directory (default: the project root), which the
    flow run uses as its working directory and `root`, so every worker needs it at that path; or a git
    URL (`https://host/org/repo.git`, `file:///path/repo.git`) or another fsspec URL, which each flow run
    pulls afresh, and then `root` is left out so the flows use their own checkout. Returns what was
    deployed, as `describe` does, with the pool, the source and each deployment's id and parameters."""
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment
    from prefect.runner.storage import LocalStorage, create_storage_from_source

    from dlops.params import paths

    _require_api_url()
    project = paths(root).root
    chosen = source or str(project)
    storage = create_storage_from_source(chosen)
    local = isinstance(storage, LocalStorage)
    if local and not (storage.destination / ENTRYPOINTS[RETRAIN].split(":")[0]).is_file():
        raise FileNotFoundError(f"--source {chosen}: no {ENTRYPOINTS[RETRAIN].split(':')[0]} there")
    created = ensure_process_pool(pool)
    # a local source is the workspace the flow runs in; a pulled one is a fresh checkout per flow run
    definitions = _definitions(root, root_parameter=str(storage.destination) if local else "")
    summary = describe(root)
    for name, kwargs in definitions.items():
        loaded = cast("Flow[..., Any]", Flow.from_source(source=chosen, entrypoint=ENTRYPOINTS[name]))
        deployment = cast("RunnerDeployment", loaded.to_deployment(**kwargs, work_pool_name=pool))
        deployment_id = deployment.apply(work_pool_name=pool)
        limit = kwargs.get("concurrency_limit")
        summary[name].update(
            id=str(deployment_id),
            entrypoint=ENTRYPOINTS[name],
            parameters=kwargs["parameters"],
            concurrency_limit=getattr(limit, "limit", limit),
        )
    return {
        "work_pool": {"name": pool, "type": POOL_TYPE, "created": created},
        "source": str(storage.destination) if local else chosen,
        "deployments": summary,
        "worker": f"prefect worker start --pool {pool}",
    }
