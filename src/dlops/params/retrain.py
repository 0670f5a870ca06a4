"""Scheduled retraining and drift monitoring (pipelines/retrain.py, `dlops schedule`, `dlops batch`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dlops.params.fields import Strict


class ScheduleConfig(Strict):
    cron: str = Field("0 6 * * 1", pattern=r"^\S+( \S+){4}$")  # five cron fields
    timezone: str = "UTC"


class DriftConfig(Strict):
    """The drift monitor: PSI per feature (tables), token length and OOV rate (text), pixel statistics
    (images); above the threshold it triggers a retraining run with the batch."""

    psi_threshold: float = Field(0.2, gt=0.0, le=10.0)
    retrain_on_drift: bool = True
    schedule: ScheduleConfig | None = None  # served by `dlops schedule` next to the retraining flow


class RetrainConfig(Strict):
    """Scheduled retraining (pipelines/retrain.py, `dlops schedule`, `dlops batch`); dvc.yaml reads none
    of it, so changing it reruns nothing."""

    schedule: ScheduleConfig = ScheduleConfig()
    # what a scheduled run takes as its new batch, per task: a source like tasks.<task>.ingest
    # (`{date}` in a path is the run's date; a generator without `seed` draws one from the date)
    batches: dict[str, dict[str, Any]] = Field(default_factory=dict)
    min_batch_rows: int = Field(100, ge=1)
    drift: DriftConfig = DriftConfig()
    lock_timeout_s: float = Field(0.0, ge=0.0, le=86_400.0)  # 0: a second run exits at once
    push: bool = True  # `dvc push` after a run, when a DVC remote is configured
    commit: bool = False  # git-commit dvc.lock, batch manifests and .dvc files after a run
    webhook_url: str | None = Field(None, pattern=r"^https?://")  # failures are POSTed here as JSON
