"""The `retrain` Prefect flow: the stages of dvc.yaml, in DAG order, as Prefect tasks.

The DAG is read from dvc.yaml through DVC itself (not a second copy), and each stage runs as
`dvc repro --single-item <stage>`, so DVC decides what is up to date and writes the same dvc.lock as a
plain `dvc repro`. Only transient failures (the `dlops` exit code 75, e.g. an unreachable tracking
server) are retried; bad data, failed gates and bugs fail at once.

Run against a local server:  make prefect-server   (one shell)
                             make retrain          (another shell)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRANSIENT_MARK = "transient error (retry may succeed)"


class StageFailed(RuntimeError):
    """A stage failed for a reason a retry will not fix."""


class TransientStageError(RuntimeError):
    """A stage failed for a reason a retry may fix (exit code 75 from `dlops`)."""


def stage_order(root: Path = PROJECT_ROOT) -> list[str]:
    """The stage addresses of dvc.yaml (e.g. `train@tabular-mlp`) in a deterministic topological order."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph.reverse()  # DVC's edges point from a stage to what it depends on
        # stage.name, not stage.addressing: the latter is relative to the caller's cwd
        # ("../project/dvc.yaml:ingest@tabular") whenever that is not the project root.
        order = nx.lexicographical_topological_sort(graph, key=lambda stage: stage.name)
        return [stage.name for stage in order]


def _retry_only_transient(task_: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TransientStageError:
        return True
    except Exception:
        return False
    return False


@task(
    retries=3,
    retry_delay_seconds=[5, 20, 60],
    retry_condition_fn=_retry_only_transient,
    task_run_name="{stage}",
)
def run_stage(stage: str, root: str, env: dict[str, str]) -> str:
    """`dvc repro --single-item <stage>`: DVC skips it when its deps, params and outs are unchanged."""
    logger = get_run_logger()
    dvc = str(Path(sys.executable).with_name("dvc"))
    proc = subprocess.run(
        [dvc, "repro", "--single-item", stage], cwd=root, env=env, capture_output=True, text=True
    )
    output = (proc.stdout + proc.stderr).strip()
    for line in output.splitlines()[-40:]:
        logger.info(line)
    if proc.returncode != 0:
        message = (
            f"stage {stage} failed (exit {proc.returncode}): {output.splitlines()[-1] if output else ''}"
        )
        if TRANSIENT_MARK in output:
            raise TransientStageError(message)
        raise StageFailed(message)
    return output


@flow(name="retrain", log_prints=True)
def retrain(root: str = str(PROJECT_ROOT), stages: list[str] | None = None) -> list[str]:
    """Run every stage of dvc.yaml in order (or the given subset, still in DAG order)."""
    from prefect.runtime import flow_run

    order = stage_order(Path(root))
    if stages:
        unknown = sorted(set(stages) - set(order))
        if unknown:
            raise ValueError(f"unknown stages {unknown}; dvc.yaml has {order}")
        order = [s for s in order if s in stages]
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DLOPS_PIPELINE_RUN_ID"] = f"prefect-{flow_run.get_id() or 'local'}"
    env["PREFECT__FLOW_RUN_ID"] = str(flow_run.get_id() or "")
    env.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for stage in order:
        run_stage(stage, root, env)
    publish_leaderboard(root, env)
    return order


@task(retries=3, retry_delay_seconds=[5, 20, 60], retry_condition_fn=_retry_only_transient)
def publish_leaderboard(root: str, env: dict[str, str]) -> str:
    """The leaderboard (metrics, gaps, registry standing) as an MLflow run and a Prefect artifact."""
    dlops = str(Path(sys.executable).with_name("dlops"))
    proc = subprocess.run(
        [dlops, "leaderboard", "--log", "--json", "--root", root], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise (TransientStageError if proc.returncode == 75 else StageFailed)(proc.stderr.strip()[-2000:])
    from dlops.leaderboard import markdown

    table = markdown(json.loads(proc.stdout))
    create_markdown_artifact(markdown="# Retrain leaderboard\n\n" + table, key="retrain-leaderboard")
    return table


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    retrain()
