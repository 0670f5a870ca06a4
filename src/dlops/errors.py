"""The errors dlops raises on purpose, each carrying the exit code the CLI returns for it.

The CLI maps `DlopsError.exit_code` (no matching of class names or message text); a Prefect flow that
runs a stage through `dvc repro` reads the code from the outcome file the CLI writes (`outcome_file`),
since DVC does not pass a stage's exit code through.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

EXIT_FAILED = 1  # anything else: a crash, an unwritable output, a corrupt checkpoint; do not retry
EXIT_REJECTED = 3  # a candidate failed a gate: a recorded outcome, not a crash; do not retry
EXIT_BAD_INPUT = 65  # EX_DATAERR: bad data or bad params (named); fix the input, then rerun
EXIT_QUARANTINED = EXIT_BAD_INPUT  # a new batch failed its checks and was quarantined
EXIT_TRANSIENT = 75  # EX_TEMPFAIL: the tracking server or network went away; a retry may succeed
EXIT_DRIFTED = 4  # `dlops drift --exit-code` only: the batch drifted (a finding, not a failure)

OUTCOME_ENV = "DLOPS_OUTCOME_FILE"  # where the CLI records a failed command's exit code and message
OUTCOME_LOG_ENV = "DLOPS_OUTCOME_LOG"  # a file each failed stage appends its outcome to (`dlops run`)


class DlopsError(Exception):
    """A failure dlops reports as one clear line; `exit_code` says what the caller should do."""

    exit_code = EXIT_FAILED
    label = "error"  # how the CLI introduces the message


class BadInput(DlopsError):
    """The data or the params are wrong (the message names the file, column, line or key)."""

    exit_code = EXIT_BAD_INPUT


class Rejected(DlopsError):
    """A candidate was judged and rejected (recorded in the registry): the system working, not a crash."""

    exit_code = EXIT_REJECTED
    label = "rejected by the gates"


class Quarantined(DlopsError):
    """New data failed its checks and was set aside; the dataset is unchanged."""

    exit_code = EXIT_QUARANTINED
    label = "quarantined"


class Transient(DlopsError):
    """A service (tracking server, network) did not answer; the same command may succeed later."""

    exit_code = EXIT_TRANSIENT
    label = "transient error (retry may succeed)"


def is_transient(exc: BaseException) -> bool:
    """Connection trouble with a tracking server is worth a retry; everything else is not. Exact types,
    not subclasses: a lock's timeout (filelock's Timeout is a TimeoutError) is no network trouble."""
    import requests
    import urllib3

    transient = {
        ConnectionError,
        ConnectionRefusedError,
        TimeoutError,
        requests.exceptions.ConnectionError,
        requests.exceptions.ReadTimeout,
        requests.exceptions.ConnectTimeout,
        urllib3.exceptions.MaxRetryError,
        urllib3.exceptions.NewConnectionError,
    }
    for error in _chain(exc):
        if isinstance(error, Transient) or type(error) in transient:
            return True
        # MLflow's REST client wraps a failed request in a plain MlflowException: only its text says so
        if "API request to" in str(error) and "failed with exception" in str(error):
            return True
        if _sqlite_locked(error):
            return True
    return False


def _sqlite_locked(error: BaseException) -> bool:
    """SQLite's "database is locked" (another process writes the store for longer than its timeout)."""
    return type(error).__name__ == "OperationalError" and "database is locked" in str(error)


def transient_reason(exc: BaseException) -> str:
    """One line on why a transient failure happened: a locked sqlite store is named as such (not as
    SQLAlchemy's text with its SQL statement); anything else is its own message on one line."""
    if any(_sqlite_locked(error) for error in _chain(exc)):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or "the project's sqlite:///mlflow.db"
        return (
            f"the tracking store {uri} is locked by another process writing to it (SQLite: database is "
            "locked); nothing was recorded; run the command again"
        )
    return " ".join(str(exc).split())


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def record_outcome(command: str, exit_code: int, message: str) -> None:
    """Write {command, exit_code, message} to $DLOPS_OUTCOME_FILE when the caller asked for it."""
    body = {"command": command, "exit_code": exit_code, "message": message}
    target = os.environ.get(OUTCOME_ENV)
    if target:
        Path(target).write_text(json.dumps(body) + "\n", encoding="utf-8")
    log = os.environ.get(OUTCOME_LOG_ENV)
    if log:  # one line per failed stage of a whole run; DVC names the stage it runs
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**body, "stage": os.environ.get("DVC_STAGE", command)}) + "\n")


def read_outcome_log(path: Path) -> list[dict[str, Any]]:
    """The outcomes the failed stages of a run appended to `path` (empty when none failed)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def read_outcome(path: Path) -> dict[str, Any] | None:
    """The outcome a failed dlops command recorded at `path`, or None when it wrote none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
