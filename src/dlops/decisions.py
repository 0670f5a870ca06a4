"""Human decisions on the registry: `dlops promote` (with an override that must give a reason) and
`dlops rollback`. Each is recorded like the pipeline's decisions: tags on the version (who, why, when,
override), a verdict artifact in its run, and a line appended to its description (the model card).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dlops import tracking
from dlops.params import MlflowConfig
from dlops.tracking import MAX_DESCRIPTION, TAG_MAX_CHARS, model_name, version_by_alias

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def promote(pair: str, version: str, cfg: MlflowConfig, *, user: str, override: bool, reason: str) -> dict:
    """A person makes `version` @champion (the old champion becomes @previous). A version that failed a
    gate is refused unless `override` with a `reason`; who, why and when are recorded as tags, a verdict
    artifact and a line in the description."""
    client = tracking.client()
    name = model_name(pair, cfg)
    target = _model_version(client, name, version)
    failed = sorted(
        key[len("gate.") : -len(".passed")]
        for key, value in target.tags.items()
        if key.startswith("gate.") and key.endswith(".passed") and value == "false"
    )
    if failed and not override:
        raise PermissionError(
            f"{name} v{version} failed gate(s) {failed}; to promote it anyway pass "
            '--override --reason "why this is acceptable"'
        )
    if override and not reason.strip():
        raise ValueError("--override needs --reason: the registry records why a gate was overridden")
    champion = version_by_alias(client, name, "champion")
    if champion is not None and str(champion.version) == str(version):
        return {"model_name": name, "version": str(version), "verdict": "already champion", "changed": False}
    if champion is not None:
        client.set_registered_model_alias(name, "previous", str(champion.version))
    client.set_registered_model_alias(name, "champion", str(version))
    words = f"promoted by {user} with `dlops promote`" + (
        f", overriding failed gates {failed}" if failed else ""
    )
    decision = _record_human(client, name, target, "promoted", words, user, reason, override=bool(failed))
    if champion is not None:
        client.set_model_version_tag(name, str(champion.version), "decision.superseded_by", f"v{version}")
    return {**decision, "previous": str(champion.version) if champion else None, "changed": True}


def rollback(pair: str, cfg: MlflowConfig, *, user: str, reason: str) -> dict:
    """@champion goes back to @previous in one step; the demoted version becomes @previous (so a second
    rollback undoes the first). Recorded like any decision."""
    client = tracking.client()
    name = model_name(pair, cfg)
    champion = version_by_alias(client, name, "champion")
    previous = version_by_alias(client, name, "previous")
    if champion is None or previous is None:
        missing = "@champion" if champion is None else "@previous"
        raise LookupError(f"{name} has no {missing} version, so there is nothing to roll back to")
    client.set_registered_model_alias(name, "champion", str(previous.version))
    client.set_registered_model_alias(name, "previous", str(champion.version))
    why = reason or "no reason given"
    _record_human(client, name, champion, "rolled back", f"rolled back by {user}", user, why, override=False)
    restored = _record_human(
        client, name, previous, "promoted", f"restored by {user} with `dlops rollback`", user, why, False
    )
    return {**restored, "rolled_back": str(champion.version)}


def _model_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise LookupError(f"{name} has no version {version!r}") from None


def _record_human(
    client: MlflowClient,
    name: str,
    mv: ModelVersion,
    verdict: str,
    words: str,
    user: str,
    reason: str,
    override: bool,
) -> dict[str, Any]:
    from datetime import UTC, datetime

    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    version = str(mv.version)
    tags = {
        "decision": verdict,
        "decision.by": user,
        "decision.reason": reason[:TAG_MAX_CHARS],
        "decision.override": str(override).lower(),
        "decision.at": at,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    record = {"model_name": name, "version": version, "verdict": verdict, "by": user, "reason": reason,
              "override": override, "at": at, "what": words}  # fmt: skip
    stamp = at.replace("-", "").replace(":", "")
    path = f"verdicts/v{version}-{stamp}-{verdict.replace(' ', '-')}.json"
    if mv.run_id:
        client.log_text(mv.run_id, json.dumps(record, indent=2, sort_keys=True), path)
    note = f"\n\n---\n**{at}: {words}.** Reason: {reason or '—'}\n"
    kept = (mv.description or "")[: MAX_DESCRIPTION - len(note)]  # the card's head stays readable
    client.update_model_version(name, version, description=kept + note)
    return record
