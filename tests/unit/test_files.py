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
