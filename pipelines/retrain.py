"""The `retrain` Prefect flow: new batches in, the stages of dvc.yaml, the registry's decisions out.

1. Hold the workspace (`.dlops/retrain.lock`): a second run waits `retrain.lock_timeout_s`, then stops.
2. For each new batch (given, or `retrain.batches` for a scheduled run): a drift report against the
   current data, then `dlops batch add`: the committed suite on the batch alone; it is appended (a new
   DVC version of `data/batches/<task>`) or quarantined (`data/quarantine/...`, never merged).
3. The DAG, read from dvc.yaml through DVC itself; each stage is `dvc repro --single-item <stage>`, so
   DVC decides what is up to date and writes the same dvc.lock as a plain `dvc repro`. A candidate the
   gates reject is a recorded outcome, not a failure. Only transient failures (the `dlops` exit code 75,
   e.g. an unreachable tracking server) are retried, with backoff. When a stage fails for good, every
   output is put back as dvc.lock records it (`dlops.restore`, as `dlops run` does).
4. `dvc push` (data, models) when a DVC remote is configured; `git commit` of dvc.lock and the batch
   manifests when `retrain.commit` is on.
5. A Prefect markdown artifact: batches, drift, each registration decision, the leaderboard.
A failed or quarantined run is logged and POSTed to `retrain.webhook_url` when set.

Run against a local server:  make prefect-server   (one shell)
                             dlops schedule        (another: serves this flow on its cron)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from dlops.errors import EXIT_QUARANTINED, EXIT_REJECTED, EXIT_TRANSIENT, OUTCOME_ENV, read_outcome

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class StageFailed(RuntimeError):
    """A stage failed for a reason a retry will not fix."""


class TransientStageError(RuntimeError):
    """A stage failed for a reason a retry may fix (exit code 75 from `dlops`)."""


class BatchQuarantined(RuntimeError):
    """At least one new batch failed its checks; it is kept in quarantine and was not merged."""


def stage_order(root: Path = PROJECT_ROOT) -> list[str]:
    """The stage addresses of dvc.yaml (e.g. `train@tabular-mlp`) in a deterministic topological order."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph.reverse()  # DVC's edges point from a stage to what it depends on
        # stage.name, not stage.addressing: the latter is relative to the caller's cwd
        # ("../project/dvc.yaml:ingest@tabular") whenever that is not the project root.
        # .dvc files (the batches of data/batches/<task>.dvc) are stages without a name: data, no command
        order = nx.lexicographical_topological_sort(graph, key=lambda stage: _name(stage) or stage.addressing)
        return [name for stage in order if (name := _name(stage))]


def _name(stage: Any) -> str | None:
    return getattr(stage, "name", None)


def _retry_only_transient(task_: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TransientStageError:
        return True
    except Exception:
        return False
    return False


def _command(name: str, args: list[str], root: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name(name))
    return subprocess.run([exe, *args], cwd=root, env=env, capture_output=True, text=True)


def _with_outcome(
    name: str, args: list[str], root: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run a command whose dlops stage records a failure's exit code and message (DVC passes neither)."""
    with tempfile.TemporaryDirectory(prefix="dlops-outcome-") as tmp:
        outcome = Path(tmp) / "outcome.json"
        proc = _command(name, args, root, {**env, OUTCOME_ENV: str(outcome)})
        return proc, read_outcome(outcome)


def _batch_args(task_name: str, spec: dict[str, Any], date: str | None, root: str) -> list[str]:
    return [task_name, "--spec", json.dumps(spec), "--root", root, *(["--date", date] if date else [])]


def _log_tail(output: str, lines: int = 40) -> None:
    from dlops.redact import redact_text

    logger = get_run_logger()
    for line in output.splitlines()[-lines:]:
        logger.info(redact_text(line))  # a child's output reaches the Prefect server: no secrets


# Prefect's handlers: the console (root) and the API log handlers that ship run logs to the server.
PREFECT_LOGGERS = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.extra")


@task(
    retries=3,
    retry_delay_seconds=[5, 20, 60],
    retry_condition_fn=_retry_only_transient,
    task_run_name="{stage}",
)
def run_stage(stage: str, root: str, env: dict[str, str]) -> str:
    """`dvc repro --single-item <stage>`: DVC skips it when its deps, params and outs are unchanged.
    A register stage the gates reject returns `rejected: ...` (recorded in the registry) instead."""
    proc, outcome = _with_outcome("dvc", ["repro", "--single-item", stage], root, env)
    output = (proc.stdout + proc.stderr).strip()
    _log_tail(output)
    if proc.returncode != 0:
        code = outcome["exit_code"] if outcome else proc.returncode
        if code == EXIT_REJECTED and outcome:
            return f"rejected: {outcome['message'].split(': ', 1)[-1]}"
        last = outcome["message"] if outcome else (output.splitlines()[-1] if output else "")
        message = f"stage {stage} failed (exit {code}): {last}"
        if code == EXIT_TRANSIENT:
            raise TransientStageError(message)
        raise StageFailed(message)
    return output


@task(
    retries=3,
    retry_delay_seconds=[5, 20, 60],
    retry_condition_fn=_retry_only_transient,
    task_run_name="drift {task_name}",
)
def check_drift(
    task_name: str, spec: dict[str, Any], date: str | None, root: str, env: dict[str, str]
) -> dict[str, Any]:
    """`dlops drift`: the batch against the task's current data; a report file, an MLflow run."""
    proc = _command("dlops", ["drift", *_batch_args(task_name, spec, date, root)], root, env)
    if proc.returncode != 0:
        error = proc.stderr.strip().splitlines()[-1:] or [""]
        if proc.returncode == EXIT_TRANSIENT:
            raise TransientStageError(error[0])
        return {"task": task_name, "error": error[0], "drifted": None}
    report = json.loads(proc.stdout)
    markdown_file = Path(root) / "reports" / "drift" / task_name / f"{report['batch']}.md"
    report["markdown"] = markdown_file.read_text(encoding="utf-8") if markdown_file.is_file() else ""
    return dict(report)


@task(task_run_name="batch {task_name}")
def add_batch(
    task_name: str, spec: dict[str, Any], date: str | None, root: str, env: dict[str, str]
) -> dict[str, Any]:
    """`dlops batch add`: accepted (appended, a new DVC version) or quarantined (never merged)."""
    proc, outcome = _with_outcome(
        "dlops", ["batch", "add", *_batch_args(task_name, spec, date, root)], root, env
    )
    _log_tail(proc.stderr, 10)
    if proc.returncode == 0:
        return dict(json.loads(proc.stdout))
    message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    if proc.returncode == EXIT_QUARANTINED and outcome:
        return {
            "task": task_name,
            "outcome": "quarantined",
            "reason": outcome["message"].split(": ", 1)[-1].strip(),
        }
    raise StageFailed(f"dlops batch add {task_name}: {message}")


@task(retries=3, retry_delay_seconds=[10, 30, 90])
def push(root: str, env: dict[str, str]) -> str:
    """`dvc push` to the default remote (data versions, models); skipped when none is configured."""
    remotes = _command("dvc", ["remote", "list"], root, env)
    if not remotes.stdout.strip():
        return "no DVC remote configured: nothing pushed (`dvc remote add -d <name> <url>`)"
    proc = _command("dvc", ["push"], root, env)
    if proc.returncode != 0:
        raise TransientStageError(f"dvc push failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "pushed"


@task
def commit(root: str, env: dict[str, str], message: str) -> str:
    """`git commit` of dvc.lock and the batch manifests/.dvc files, so `git checkout` + `dvc checkout`
    restore this state; nothing else in the workspace is committed."""
    paths = ["dvc.lock", "data/batches"]
    subprocess.run(["git", "add", "--", *paths], cwd=root, env=env, check=True, capture_output=True)
    staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *paths], cwd=root, env=env)
    if staged.returncode == 0:
        return "nothing to commit"
    done = subprocess.run(
        ["git", "commit", "-q", "-m", message, "--", *paths],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StageFailed(f"git commit failed: {done.stderr.strip()}")
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()


@task(retries=3, retry_delay_seconds=[5, 20, 60], retry_condition_fn=_retry_only_transient)
def publish_leaderboard(root: str, env: dict[str, str]) -> str:
    """The leaderboard (metrics, gaps, registry standing) as an MLflow run; its Markdown table back."""
    proc = _command("dlops", ["leaderboard", "--log", "--json", "--root", root], root, env)
    if proc.returncode != 0:
        raise (TransientStageError if proc.returncode == EXIT_TRANSIENT else StageFailed)(
            proc.stderr.strip()[-2000:]
        )
    from dlops.leaderboard import markdown

    return str(markdown(json.loads(proc.stdout)))


def _notify_failure(flow: Any, flow_run: Any, state: Any) -> None:  # noqa: F811 (Prefect's hook signature)
    """Flow hook: a failed or crashed run goes to the log and to `retrain.webhook_url`."""
    from dlops.params import load_params
    from dlops.workspace import notify

    root = Path(str((flow_run.parameters or {}).get("root") or PROJECT_ROOT))
    try:
        url = load_params(root / "params.yaml").retrain.webhook_url
    except Exception:  # params themselves may be what failed
        url = None
    notify(
        url, f"{flow.name} failed", str(state.message), {"flow_run_id": str(flow_run.id), "root": str(root)}
    )


def _environment(root: str, flow_run_id: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DLOPS_PIPELINE_RUN_ID"] = f"prefect-{flow_run_id or 'local'}"
    env["PREFECT__FLOW_RUN_ID"] = str(flow_run_id or "")
    env["DLOPS_ROOT"] = root
    env.setdefault("GIT_PYTHON_REFRESH", "quiet")
    return env


@flow(name="retrain", log_prints=True, on_failure=[_notify_failure], on_crashed=[_notify_failure])
def retrain(
    root: str = "",  # empty: the checkout this flow file sits in
    batches: dict[str, dict[str, Any]] | None = None,
    date: str | None = None,
    scheduled: bool = False,
    stages: list[str] | None = None,
) -> dict[str, Any]:
    """Take new batches (or, when `scheduled`, those of params `retrain.batches`), run the DAG, register
    behind the gates, push, and report. Returns the summary the markdown artifact shows."""
    from prefect.runtime import flow_run

    from dlops.params import load_params
    from dlops.redact import install
    from dlops.workspace import workspace_lock

    install(*PREFECT_LOGGERS)
    root = root or str(PROJECT_ROOT)
    params = load_params(Path(root) / "params.yaml")
    chosen = dict(batches or {}) or (dict(params.retrain.batches) if scheduled else {})
    run_id = flow_run.get_id()
    with workspace_lock(Path(root), params.retrain.lock_timeout_s, holder=f"prefect flow run {run_id}"):
        env = _environment(root, run_id)
        summary: dict[str, Any] = {"date": date, "batches": {}, "drift": {}, "decisions": {}}
        for task_name, spec in sorted(chosen.items()):
            if (Path(root) / "data" / "raw" / f"{task_name}.parquet").is_file():
                summary["drift"][task_name] = check_drift(task_name, spec, date, root, env)
            summary["batches"][task_name] = add_batch(task_name, spec, date, root, env)
        quarantined = [t for t, b in summary["batches"].items() if b["outcome"] == "quarantined"]
        if not chosen or len(quarantined) < len(chosen):
            summary["decisions"] = _run_dag(root, env, stages)
            if params.retrain.push:
                summary["push"] = push(root, env)
            if params.retrain.commit:
                summary["commit"] = commit(
                    root, env, f"retrain {date or ''} (prefect flow run {run_id})".strip()
                )
        summary["leaderboard"] = publish_leaderboard(root, env)
        create_markdown_artifact(
            markdown=report_markdown(summary), key="retrain-report", description="retrain"
        )
    if quarantined:
        reasons = "; ".join(f"{t}: {summary['batches'][t]['reason']}" for t in quarantined)
        raise BatchQuarantined(f"{len(quarantined)} batch(es) quarantined, not merged: {reasons}")
    return summary


def _run_dag(root: str, env: dict[str, str], stages: list[str] | None) -> dict[str, str]:
    from dlops import dag
    from dlops.params import load_params, paths
    from dlops.restore import outputs_kept, restore

    p = paths(Path(root))
    params = load_params(p.params)
    dag.write(params, p)  # what dvc.yaml reads of params.yaml, as `dlops run` does
    dag.check_inputs(params, p.root)
    order = stage_order(Path(root))
    if stages:
        unknown = sorted(set(stages) - set(order))
        if unknown:
            raise ValueError(f"unknown stages {unknown}; dvc.yaml has {order}")
        order = [s for s in order if s in stages]
    decisions: dict[str, str] = {}
    with outputs_kept(p.root) as kept:
        try:
            for stage in order:
                output = run_stage(stage, root, env)
                if stage.startswith("register@"):
                    decisions[stage.split("@", 1)[1]] = _decision_line(output)
        except BaseException:
            # DVC deleted the failed stage's outputs before running it: put back what dvc.lock records
            put_back = restore(p.root, kept, str(Path(sys.executable).with_name("dvc")))
            if put_back:
                get_run_logger().warning("outputs put back as dvc.lock records them: %s", put_back)
            raise
    return decisions


def _decision_line(output: str) -> str:
    if output.startswith("rejected: "):
        return output
    for line in output.splitlines():
        if line.startswith("register ") and ": version " in line:
            return line.split(": ", 1)[1]
    return "up to date (nothing changed)"


def report_markdown(summary: dict[str, Any]) -> str:
    lines = ["# Retraining run", ""]
    if summary["batches"]:
        lines += ["## New batches", "", "| task | outcome | batch | rows | detail |", "|---|---|---|---|---|"]
        for task_name, b in sorted(summary["batches"].items()):
            detail = (
                b.get("reason", "") if b["outcome"] == "quarantined" else f"{b.get('warnings', 0)} warnings"
            )
            lines.append(
                f"| {task_name} | {b['outcome']} | {b.get('id', '-')} | {b.get('rows', '-')} | {detail} |"
            )
        lines.append("")
    for task_name, report in sorted(summary["drift"].items()):
        lines += [report.get("markdown") or f"Drift check for {task_name}: {report.get('error')}", ""]
    if summary["decisions"]:
        lines += ["## Registration decisions", "", "| model | decision |", "|---|---|"]
        lines += [f"| {m} | {d.replace('|', '/')} |" for m, d in sorted(summary["decisions"].items())]
        lines.append("")
    for key in ("push", "commit"):
        if key in summary:
            lines += [f"**{key}**: {summary[key]}", ""]
    lines += ["## Leaderboard", "", summary.get("leaderboard", "")]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    retrain(scheduled=True)  # `make retrain`: one run now, with the batches a scheduled run takes
