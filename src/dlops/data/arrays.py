"""The processed split files of the array kinds (images, text): one .npz per split.

Each split holds `x` (uint8 pixels (N, C, H, W), or int64 token ids (N, L)), labels `y`, the `sha1` of
each item and its group columns; models read pixels scaled to [0, 1]. Identical arrays give identical
bytes, so DVC sees no change when nothing changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from dlops.files import atomic_write

GROUP_KEY_PREFIX = "group__"  # npz key of a group column (a table split names it "__group__.<attr>")


def save_split(path: Path, frame: pd.DataFrame, pixels: np.ndarray, sensitive: list[str]) -> None:
    """Write one split atomically: x uint8 (N, C, H, W), y int64 (N,), sha1 and group columns."""
    arrays: dict[str, Any] = {
        "x": np.asarray(pixels),  # uint8 images or int64 token ids
        "y": frame["label"].to_numpy(dtype=np.int64),
        "sha1": frame["sha1"].to_numpy(dtype=str),
    }
    for attr in sensitive:
        arrays[GROUP_KEY_PREFIX + attr] = frame[attr].astype(str).to_numpy(dtype=str)
    write_npz(path, arrays)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (np.load reads it) written atomically with fixed zip timestamps, so identical arrays
    give identical bytes (np.savez stamps the current time, which would change DVC's md5 every run)."""
    import zipfile

    def write(handle: IO[bytes]) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)

    atomic_write(path, write)


def load_array_split(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(x, y int64 (N,), {attr: group labels (N,)}) of one .npz split: images (uint8 on disk) come back
    as float32 (N, C, H, W) in [0, 1]; token ids (text) as int64 (N, L)."""
    with np.load(path, allow_pickle=False) as data:
        x = (
            data["x"].astype(np.float32) / 255.0
            if data["x"].dtype == np.uint8
            else data["x"].astype(np.int64)
        )
        y = data["y"].astype(np.int64)
        groups = {k[len(GROUP_KEY_PREFIX) :]: data[k] for k in data.files if k.startswith(GROUP_KEY_PREFIX)}
    return x, y, groups
