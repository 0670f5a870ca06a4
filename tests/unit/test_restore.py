"""`dlops.restore`: after a failed run, outputs go back to what dvc.lock records, and only those the run
touched (a kept file copied back; a folder whose files changed handed to `dvc checkout`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from dlops.restore import keep_outputs, restore


def _project(root: Path) -> None:
    (root / "d").mkdir(parents=True)
    (root / "d" / "part.txt").write_text("kept folder\n")
    (root / "e").mkdir()
    (root / "e" / "part.txt").write_text("old folder\n")
    (root / "f.txt").write_text("old file\n")
    lock = {
        "schema": "2.0",
        "stages": {
            "a": {"outs": [{"path": "f.txt", "md5": hashlib.md5(b"old file\n").hexdigest()},
                           {"path": "d", "md5": "0.dir"}]},
            "b": {"outs": [{"path": "e", "md5": "1.dir"}]},
        },
    }  # fmt: skip
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


def _fake_dvc(root: Path) -> Path:
    script = root / "fake-dvc"
    script.write_text(f'#!/bin/sh\necho "$@" > {root / "dvc-args"}\n')
    script.chmod(0o755)
    return script


def test_a_rewritten_file_comes_back_and_only_a_touched_folder_goes_to_dvc_checkout(tmp_path: Path) -> None:
    root = tmp_path / "project"
    _project(root)
    kept = keep_outputs(root, root / ".keep")
    (root / "f.txt").unlink()  # DVC deletes an output, then the failed stage writes a new one
    (root / "f.txt").write_text("half-written\n")
    (root / "e" / "part.txt").unlink()
    (root / "e" / "part.txt").write_text("new folder\n")

    put_back = restore(root, kept, str(_fake_dvc(tmp_path)))

    assert put_back == ["f.txt"]
    assert (root / "f.txt").read_text() == "old file\n"
    assert (tmp_path / "dvc-args").read_text().split() == ["checkout", "--force", "--quiet", "b"]


def test_nothing_touched_needs_no_checkout(tmp_path: Path) -> None:
    root = tmp_path / "project"
    _project(root)
    kept = keep_outputs(root, root / ".keep")

    assert restore(root, kept, str(_fake_dvc(tmp_path))) == []
    assert not (tmp_path / "dvc-args").exists()
