"""The stage-lock entries a stopped dvc leaves behind are released by the run that stopped it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dlops.workspace import release_dead_rwlock_entries


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_processes_entries_are_released_and_live_ones_stay(tmp_path: Path) -> None:
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    (tmp_path / ".dvc" / "config").write_text("")
    dead, live = _dead_pid(), os.getpid()
    rwlock = tmp_path / ".dvc" / "tmp" / "rwlock"
    rwlock.write_text(
        json.dumps(
            {
                "write": {
                    "models/a": {"pid": dead, "cmd": "dvc repro"},
                    "models/b": {"pid": live, "cmd": "dvc repro"},
                },
                "read": {
                    "data/x": [{"pid": dead, "cmd": "dvc repro"}, {"pid": live, "cmd": "dvc repro"}],
                    "data/y": [{"pid": dead, "cmd": "dvc repro"}],
                },
            }
        )
    )
    released = release_dead_rwlock_entries(tmp_path)
    assert sorted(released) == ["data/x", "data/y", "models/a"]
    assert json.loads(rwlock.read_text()) == {
        "write": {"models/b": {"pid": live, "cmd": "dvc repro"}},
        "read": {"data/x": [{"pid": live, "cmd": "dvc repro"}]},
    }


def test_no_lock_file_means_nothing_to_release(tmp_path: Path) -> None:
    assert release_dead_rwlock_entries(tmp_path) == []
