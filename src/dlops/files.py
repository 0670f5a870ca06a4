"""Every file dlops writes goes through `atomic_write`: a temporary file beside the target (same
filesystem), mode 0644 (less the umask) like any file the user makes, fsync, then os.replace, so a reader
never sees half a file and a failed write leaves the previous file as it was and no temporary behind.
`file_sha256` is the one content hash (checkpoints, splits, input files, downloads).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

MODE = 0o644


def temp_sibling(path: Path) -> Path:
    """A unique hidden name beside `path` (same filesystem, so os.replace is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write` on a binary handle of a temporary file, then move it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # a full disk or a quota says so without naming the file: name it
            raise OSError(exc.errno, f"{exc.strerror or exc} (writing {path})", str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)  # a no-op after os.replace; removes a partial file
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    """Deterministic JSON (sorted keys), so DVC outputs are byte-identical across runs; raises ValueError
    on NaN/inf instead of writing invalid JSON."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_parquet(frame: Any, path: Path) -> Path:
    """A pandas DataFrame as Parquet, without its index."""
    return atomic_write(path, lambda handle: frame.to_parquet(handle, index=False))


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
