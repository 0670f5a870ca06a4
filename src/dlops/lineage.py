"""Where a registered model comes from: version -> training run -> git commit -> data version, and the
commands that bring that code and data back (`git checkout` + `dvc checkout`).

Everything is read from the tags `dlops.tracking` writes at training and registration time; nothing
here changes the registry.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from dlops import tracking
from dlops.tracking import version_by_alias

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
LIBRARIES = ("python", "torch", "mlflow", "host.device")


def parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/<name>/<version>` or `models:/<name>@<alias>` -> (name, version, alias)."""
    match = _URI.match(uri.strip())
    if match is None:
        raise ValueError(
            f"{uri!r} is not a registered model URI; use models:/<name>/<version> or models:/<name>@<alias>"
        )
    return match["name"], match["version"], match["alias"]


def lineage(uri: str, root: Path | None = None) -> dict[str, Any]:
    """The chain of one registered version, as a dict (see `render`)."""
    from mlflow.exceptions import MlflowException

    client = tracking.client()
    name, version, alias = parse_uri(uri)
    if alias is not None:
        found = version_by_alias(client, name, alias)
        if found is None:
            raise LookupError(f"{name} has no version with alias @{alias}")
        mv = found
    else:
        try:
            mv = client.get_model_version(name, str(version))
        except MlflowException:
            raise LookupError(f"{name} has no version {version}") from None
    tags = dict(mv.tags)
    run = client.get_run(mv.run_id) if mv.run_id else None
    run_tags = dict(run.data.tags) if run else {}
    commit = tags.get("git.commit") or run_tags.get("git.commit", "unknown")
    task = tags.get("dlops.task") or run_tags.get("dlops.task", "?")
    return {
        "model": name,
        "version": str(mv.version),
        "aliases": sorted(mv.aliases or []),
        "decision": tags.get("decision"),
        "run_id": mv.run_id,
        "run_name": run.info.run_name if run else None,
        "pair": tags.get("dlops.pair") or run_tags.get("dlops.pair"),
        "task": task,
        "git_commit": commit,
        "git_dirty": tags.get("git.dirty", "unknown"),
        "data_version": tags.get("data.version", "unknown"),
        "data_batches": tags.get("data.batches") or run_tags.get("data.batches") or "none",
        "processed_version": tags.get("data.processed") or run_tags.get("data.processed"),
        "test_split": tags.get("data.test_split"),
        "params_hash": tags.get("params.hash"),
        "model_sha256": tags.get("dlops.model_sha256"),
        # a fine-tuned version: the model it started from (registered URI or file, and its sha256)
        "parent_model": tags.get("dlops.parent_model") or run_tags.get("dlops.parent_model"),
        "pipeline_run_id": tags.get("pipeline.run_id"),
        "prefect_flow_run_id": tags.get("prefect.flow_run_id"),
        "libraries": {key: tags[key] for key in LIBRARIES if key in tags},
        "restore": _restore(
            commit, task, tags.get("git.dirty"), tags.get("data.version"), name, mv.version, root
        ),
    }


def _restore(
    commit: str, task: str, dirty: str | None, md5: str | None, name: str, version: Any, root: Path | None
) -> list[str]:
    if commit == "unknown":
        return ["the training run recorded no git commit: the code cannot be restored exactly"]
    data = [f"dlops lineage models:/{name}/{version} --restore   # the data version alone, by its md5"]
    if md5 and root is not None and not _commit_has(root, commit, md5):
        # a scheduled run appended a batch and left dvc.lock uncommitted (retrain.commit: false)
        return [
            f"git checkout {commit}   # the code; its dvc.lock predates this data version",
            *data,
            "(set retrain.commit: true to commit dvc.lock and data/batches after each retraining run)",
        ]
    steps = [
        f"git checkout {commit}",
        f"dvc checkout data/raw/{task}.parquet   # or `dvc pull` when the data lives in a remote",
        "dvc repro                             # rebuilds anything the commit's dvc.lock describes",
        *data,
    ]
    if dirty == "true":
        steps.append("note: the working tree had uncommitted changes when this model was trained")
    return steps


def _commit_has(root: Path, commit: str, md5: str) -> bool:
    """Whether the commit's dvc.lock records this data version (else `git checkout` alone cannot bring it)."""
    done = subprocess.run(
        ["git", "show", f"{commit}:dvc.lock"], cwd=root, capture_output=True, text=True, timeout=20
    )
    return done.returncode == 0 and md5 in done.stdout


def restore_data(chain: dict[str, Any], root: Path) -> Path:
    """Bring back the raw table a version was trained on, by its md5, into restored/<name>-v<version>/,
    with DVC itself: a .dvc file naming that md5, then `dvc checkout` (from the local cache) or
    `dvc pull` (from the remote). The workspace's own data and dvc.lock are not touched."""
    md5 = chain["data_version"]
    if not re.fullmatch(r"[0-9a-f]{32}", str(md5)):
        raise LookupError(f"{chain['model']} v{chain['version']} recorded no DVC data version ({md5})")
    out = root / "restored" / f"{chain['model']}-v{chain['version']}"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{chain['task']}.parquet"
    pointer = out / f"{target.name}.dvc"
    pointer.write_text(f"outs:\n- md5: {md5}\n  path: {target.name}\n  hash: md5\n", encoding="utf-8")
    from dlops.workspace import dvc_executable

    dvc = dvc_executable()
    rel = str(pointer.relative_to(root))
    try:
        done = subprocess.run([dvc, "checkout", rel], cwd=root, capture_output=True, text=True)
        if done.returncode != 0 or not target.is_file():
            done = subprocess.run([dvc, "pull", rel], cwd=root, capture_output=True, text=True)
    finally:
        pointer.unlink(missing_ok=True)  # a stray .dvc file would join the pipeline
    if done.returncode != 0 or not target.is_file():
        raise FileNotFoundError(
            f"data version {md5} is neither in the DVC cache nor in the remote: "
            f"{(done.stderr or done.stdout).strip()[-300:]}"
        )
    (out / ".gitignore").write_text("*\n", encoding="utf-8")  # a restored copy, not project data
    return target


def render(chain: dict[str, Any]) -> str:
    """Plain text: version -> run -> commit -> data version, then how to restore."""
    aliases = " ".join(f"@{a}" for a in chain["aliases"])
    lines = [
        f"{chain['model']} v{chain['version']} {aliases}".rstrip() + f"  (decision: {chain['decision']})",
        f"  -> run {chain['run_id']} ({chain['run_name']}; pipeline {chain['pipeline_run_id']}"
        + (f", prefect flow run {chain['prefect_flow_run_id']}" if chain["prefect_flow_run_id"] else "")
        + ")",
        f"  -> commit {chain['git_commit']} (dirty: {chain['git_dirty']}), params {chain['params_hash']}",
        f"  -> data {chain['task']}: raw md5 {chain['data_version']}, test split {chain['test_split']}",
        f"     batches appended: {chain['data_batches']}",
        f"  model sha256 {chain['model_sha256']}; "
        + ", ".join(f"{k} {v}" for k, v in chain["libraries"].items()),
        *([f"  fine-tuned from {chain['parent_model']}"] if chain.get("parent_model") else []),
        "restore:",
        *(f"  {step}" for step in chain["restore"]),
    ]
    return "\n".join(lines)
