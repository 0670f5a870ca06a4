"""dlops.files: a failed write leaves the previous file and no temporary, and names the file."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from dlops.files import atomic_write, write_text


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path: Path) -> None:
    target = write_text(tmp_path / "report.json", "old\n")

    def disk_full(handle: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"No space left on device \(writing .*report\.json\)") as caught:
        atomic_write(target, disk_full)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_written_files_are_readable_by_others_like_any_file_the_user_makes(tmp_path: Path) -> None:
    import os
    import stat

    import torch

    from dlops.data.validation import save_suite
    from dlops.training.checkpoint import save_atomic

    umask = os.umask(0o022)
    try:
        save_atomic({"weights": torch.zeros(2)}, tmp_path / "model.pt")  # models/<model>/model.pt
        save_suite({"name": "s", "expectations": []}, tmp_path / "suite.json")  # a drafted suite
    finally:
        os.umask(umask)
    for name in ("model.pt", "suite.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name  # not mkstemp's 0600
