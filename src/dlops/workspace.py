"""One retraining run per workspace, and a word to a person when one fails.

The lock is a file lock (`filelock`, advisory `flock`) on `.dlops/retrain.lock`: it is released by the
kernel when its holder dies, so a killed run never leaves the workspace locked. Child processes of the
holder (the `dlops` and `dvc` commands a flow runs) see `DLOPS_WORKSPACE_LOCK` and do not take it again.
DVC keeps its own lock around `dvc repro`, so `dvc.lock` has a single writer even outside our runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dlops.errors import DlopsError

log = logging.getLogger(__name__)
HELD = "DLOPS_WORKSPACE_LOCK"


class WorkspaceBusy(DlopsError, RuntimeError):
    """Another pipeline run holds this workspace."""


@contextmanager
def workspace_lock(root: Path, timeout_s: float = 0.0, holder: str = "") -> Iterator[Path]:
    """Hold `.dlops/retrain.lock` for the block: wait up to `timeout_s` (0: do not wait), else raise
    WorkspaceBusy naming who holds it since when."""
    from filelock import FileLock, Timeout

    path, info = _lock_files(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get(HELD) == str(path):
        yield path  # our parent process holds it
        return
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise _busy(
            root,
            "this run stops without touching data, dvc.lock or the registry (retrain.lock_timeout_s "
            f"is {timeout_s:g} s)",
        ) from None
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "holder": holder}
        info.write_text(json.dumps(record | {"since": _now()}) + "\n", encoding="utf-8")
        os.environ[HELD] = str(path)
        yield path
    finally:
        os.environ.pop(HELD, None)
        info.unlink(missing_ok=True)
        lock.release()


def repro(root: Path | None = None, wait_s: float | None = None) -> tuple[int, list[dict[str, Any]]]:
    """`dvc repro --keep-going` while holding the workspace (what `dlops run` and `make run` do): a
    rejected candidate or a failed stage stops only the stages that depend on it. A second run waits
    `wait_s` (default retrain.lock_timeout_s), then stops with WorkspaceBusy. Returns dvc's exit code and
    the outcome of each failed stage ({stage, exit_code, message}; exit code 3 = rejected by its gates).

    After a failure (or a signal) every DVC output is put back to what dvc.lock records
    (`dlops.restore`). SIGTERM, SIGINT and SIGHUP stop the whole `dvc repro` process tree before the
    workspace lock is released, then raise Interrupted (exit 128 + the signal's number)."""
    import tempfile

    from dlops import dag
    from dlops import restore as outputs
    from dlops.errors import OUTCOME_LOG_ENV, read_outcome_log
    from dlops.params import load_params, paths

    p = paths(root)
    params = load_params(p.params)
    timeout = params.retrain.lock_timeout_s if wait_s is None else wait_s
    with workspace_lock(p.root, timeout, holder="dlops run"), tempfile.TemporaryDirectory() as tmp:
        dag.write(params, p)  # what dvc.yaml reads of params.yaml, current before DVC parses it
        dag.check_inputs(params, p.root)
        log_file = Path(tmp) / "outcomes.jsonl"
        env = {**os.environ, OUTCOME_LOG_ENV: str(log_file)}
        interrupted: Interrupted | None = None
        with outputs.outputs_kept(p.root) as kept:
            try:
                code = _run_process_tree([dvc_executable(), "repro", "--keep-going"], p.root, env)
            except Interrupted as exc:
                code, interrupted = exc.exit_code, exc
            failed = read_outcome_log(log_file)
            if code:
                put_back = outputs.restore(p.root, kept, dvc_executable())
                if put_back:
                    log.warning("failed stages: outputs put back as dvc.lock records them: %s", put_back)
        if interrupted is not None:
            raise interrupted
        return code, failed


class Interrupted(DlopsError):
    """`dlops run` was stopped by a signal; its process tree is gone and the outputs are restored."""

    def __init__(self, signum: int) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name}: every stage it started was stopped, the workspace's outputs are as dvc.lock "
            "records them and the workspace is free"
        )
        self.exit_code = 128 + signum


def _run_process_tree(command: list[str], cwd: Path, env: dict[str, str], grace_s: float = 30.0) -> int:
    """Run `command` in its own process group; on SIGTERM, SIGINT or SIGHUP send the group SIGINT, each
    second until DVC stops (DVC and the stages unwind and release DVC's lock), SIGKILL what is left
    after `grace_s`, and raise Interrupted once the whole group is gone."""
    import signal
    import subprocess

    proc = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    received: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Interrupted(signum)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        return proc.wait()
    except Interrupted:
        _stop_group(proc, grace_s)
        try:
            release_dead_rwlock_entries(cwd)
        except Exception as exc:  # the stop is what gets reported; the next dvc cleans up and warns
            log.warning("could not release the stopped dvc's stage-lock entries: %s", exc)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_group(proc: Any, grace_s: float) -> None:
    import signal
    import subprocess
    import time

    def send(sig: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    # DVC ignores SIGINT while a stage's command runs and, with --keep-going, goes on to the next
    # independent stage once that command dies of it; so SIGINT is repeated each second until DVC
    # itself stops (between stages it unwinds and releases its rwlock), and SIGKILL ends the grace
    deadline = time.monotonic() + grace_s
    while True:
        send(signal.SIGINT)
        try:
            proc.wait(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                send(signal.SIGKILL)
                proc.wait()
                break
    deadline = time.monotonic() + grace_s  # grandchildren that outlived dvc itself
    while time.monotonic() < deadline and alive(proc.pid, group=True):
        time.sleep(0.1)
    if alive(proc.pid, group=True):
        send(signal.SIGKILL)


def release_dead_rwlock_entries(root: Path) -> list[str]:
    """Drop the entries of processes that no longer exist from DVC's stage lock (.dvc/tmp/rwlock) and
    return their paths. A dvc stopped while it unwinds (a second SIGINT, or SIGKILL after the grace)
    leaves its entries behind; DVC drops them itself on the next run, with a warning per path, so the run
    that stopped it cleans up instead. Live processes' entries (another dvc in the workspace) stay."""
    from dvc.config import Config
    from dvc.fs import localfs
    from dvc.rwlock import _edit_rwlock  # DVC's own reader/writer, under its own lock file

    lock_dir = root / ".dvc" / "tmp"
    if not (lock_dir / "rwlock").exists():
        return []
    hardlink = Config(dvc_dir=str(root / ".dvc"))["core"].get("hardlink_lock", False)
    released: list[str] = []
    with _edit_rwlock(str(lock_dir), localfs, hardlink=hardlink) as lock:
        for path, info in list(lock["write"].items()):
            if not alive(info["pid"]):
                del lock["write"][path]
                released.append(path)
        for path, infos in list(lock["read"].items()):
            live = [info for info in infos if alive(info["pid"])]
            released += [path] * (len(infos) - len(live))
            if live:
                lock["read"][path] = live
            else:
                del lock["read"][path]
    if released:
        log.info("released %d stage lock entries of the stopped dvc", len(released))
    return released


def alive(pid: int, group: bool = False) -> bool:
    """Whether process `pid` (with `group`, any process of group `pid`) still exists on this host."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_free(root: Path) -> None:
    """Raise WorkspaceBusy when another run (`dlops run`, a retraining flow, `dlops batch add`) holds the
    workspace; its own child processes pass. A stage calls this before writing anything, so a bare
    `dvc repro` started beside a running pipeline stops at its first stage instead of interleaving."""
    from filelock import FileLock, Timeout

    path, _ = _lock_files(root)
    if not path.exists() or os.environ.get(HELD) == str(path):
        return
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise _busy(root, "this stage stops without writing anything") from None
    lock.release()


def _lock_files(root: Path) -> tuple[Path, Path]:
    """The lock file and the holder's record beside it."""
    state = root / ".dlops"
    return state / "retrain.lock", state / "retrain.lock.json"


def _busy(root: Path, consequence: str) -> WorkspaceBusy:
    path, info = _lock_files(root)
    return WorkspaceBusy(
        f"{root}: another pipeline run holds {path.relative_to(root)} ({_holder(info)}); {consequence}"
    )


def dvc_executable() -> str:
    """The virtualenv's `dvc` (beside this interpreter, even when PATH lacks it), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else shutil.which("dvc") or "dvc"


def _holder(info: Path, patience_s: float = 2.0) -> str:
    """Who holds the lock, from the record the holder writes just after it got the lock (waiting up to
    `patience_s` for a holder that started a moment ago)."""
    import time

    deadline = time.monotonic() + patience_s
    while True:
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
            break
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                return "holder unknown"
            time.sleep(0.05)
    who = f" {data['holder']}" if data.get("holder") else ""
    return f"pid {data.get('pid')} on {data.get('host')}{who}, since {data.get('since')}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def notify(webhook_url: str | None, event: str, message: str, details: dict[str, Any] | None = None) -> bool:
    """Log `message`; POST it as JSON to the webhook when one is configured (Slack-style `text` field
    included). A webhook that fails is logged, never raised: the notice must not hide the failure."""
    from dlops.redact import redact_text, url_origin

    message = redact_text(message)  # it goes to a chat channel
    log.error("%s: %s", event, message)
    if not webhook_url:
        return False
    body = {"event": event, "text": f"dlops {event}: {message}", "at": _now(), **(details or {})}
    request = urllib.request.Request(
        webhook_url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http(s) checked in params)
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        log.error("webhook %s failed: %s", url_origin(webhook_url), exc)  # its path is the secret
        return False
