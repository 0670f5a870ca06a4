"""Input files every kind reads: project paths named in params and sha256-pinned downloads.

Every failure is a `DataSourceError` (or the error type a caller passes) naming the file or URL; a
download goes to a hidden sibling that is renamed into place only once its sha256 matches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from dlops.errors import BadInput
from dlops.files import file_sha256, temp_sibling

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DataSourceError(BadInput, ValueError):
    """A raw table cannot be loaded or lacks a declared column; the message names the file."""


def resolve_local(path: str, root: Path) -> Path:
    """A data file named in params: absolute as given, or relative to `root`."""
    return project_path(path, root)


def project_path(
    path: str, root: Path, entry: str = "file", error: type[ValueError] = DataSourceError
) -> Path:
    """An existing file (or folder, `entry="folder"`) named in params: absolute as given, or relative to
    `root`, where a `..` that escapes the project is refused. Failures raise `error` naming `path`."""
    given = Path(path).expanduser()
    if given.is_absolute():
        full = given
    else:
        # abspath, not resolve(): a symlink inside the project may point at a shared data disk.
        base = Path(os.path.abspath(root))
        full = Path(os.path.normpath(base / given))
        if not full.is_relative_to(base):
            raise error(f"{path}: escapes the project root {root}; give an absolute path instead")
    if not (full.is_dir() if entry == "folder" else full.is_file()):
        if full.exists():
            found = "a folder" if full.is_dir() else "not a regular file"
            raise error(f"{path}: {found}, expected a {entry} (looked at {full})")
        raise error(f"{path}: {entry} not found (looked at {full})")
    return full


def download(url: str, sha256: str, cache_dir: Path) -> Path:
    """The file at `url`, cached as `cache_dir/<sha256>`; its hash is checked before anyone reads it."""
    # params check both; repeated here because urlopen would also read file:// and ftp:// URLs
    if urlparse(url).scheme.lower() not in ("http", "https"):
        raise DataSourceError(f"{url}: only http(s) URLs are downloaded")
    expected = sha256.lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise DataSourceError(f"{url}: sha256 {sha256!r} is not 64 hex characters")
    target = cache_dir / expected
    if target.is_file() and file_sha256(target) == expected:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        with tmp.open("xb") as out:
            actual = _fetch(url, out)
        if actual != expected:
            raise DataSourceError(f"{url}: sha256 mismatch: expected {expected}, got {actual}")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as exc:
        raise DataSourceError(f"{url}: download failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)  # a no-op after os.replace; removes any partial file
    log.info("downloaded %s -> %s", url, target)
    return target


def _fetch(url: str, out: IO[bytes]) -> str:
    """Stream `url` into `out`; return the sha256 of what was written."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response:  # http(s) only: checked in config
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()
