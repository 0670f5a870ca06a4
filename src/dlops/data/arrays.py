"""Images: a seeded split that keeps identical images together, and the processed split files.

The raw per-image table (dlops.kinds.images.sources) is split stratified by label x group like a table,
but over distinct images (by sha1): copies of one image always land in the same split, so no test image
is also a training image. Each split is an .npz of uint8 pixels (N, C, H, W), labels and group
columns; models read pixels scaled to [0, 1]. `transform.json` records classes and the input shape.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dlops.config import ImageColumns, SplitConfig

GROUP_PREFIX = "group__"


def split_images(
    raw: pd.DataFrame,
    columns: ImageColumns,
    split: SplitConfig,
    blocks: list[tuple[str, int]] | None = None,
) -> dict[str, pd.DataFrame]:
    """train/val/test frames of `raw`; every copy of an image (same sha1) goes where its first copy went.

    `blocks` (consecutive rows: the source's, then each accepted batch) are split one after another,
    each with its own seed; an image already placed by an earlier block keeps its split."""
    from dlops.kinds.tabular.transform import SPLITS, block_split, iter_blocks, split_frame

    where: dict[str, str] = {}
    for block_id, block in iter_blocks(raw, blocks or [("base", len(raw))]):
        fresh = block[~block["sha1"].isin(where)].drop_duplicates("sha1", keep="first")
        if fresh.empty:
            continue
        parts = split_frame(fresh, columns, block_split(split, block_id))
        where.update({sha: name for name, frame in parts.items() for sha in frame["sha1"]})
    assigned = raw["sha1"].map(where)
    return {name: raw[assigned == name] for name in SPLITS}


def duplicates_across_splits(splits: dict[str, pd.DataFrame]) -> int:
    """How many distinct images appear in more than one split (0 by construction; checked, not assumed)."""
    seen: dict[str, str] = {}
    crossing = set()
    for name, frame in splits.items():
        for sha in frame["sha1"].unique():
            if seen.setdefault(sha, name) != name:
                crossing.add(sha)
    return len(crossing)


def save_split(path: Path, frame: pd.DataFrame, pixels: np.ndarray, sensitive: list[str]) -> None:
    """Write one split atomically: x uint8 (N, C, H, W), y int64 (N,), sha1 and group columns."""
    arrays: dict[str, Any] = {
        "x": np.asarray(pixels),  # uint8 images or int64 token ids
        "y": frame["label"].to_numpy(dtype=np.int64),
        "sha1": frame["sha1"].to_numpy(dtype=str),
    }
    for attr in sensitive:
        arrays[GROUP_PREFIX + attr] = frame[attr].astype(str).to_numpy(dtype=str)
    write_npz(path, arrays)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (np.load reads it) written atomically with fixed zip timestamps, so identical arrays
    give identical bytes (np.savez stamps the current time, which would change DVC's md5 every run)."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name in sorted(arrays):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_image_split(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(x, y int64 (N,), {attr: group labels (N,)}) of one .npz split: images (uint8 on disk) come back
    as float32 (N, C, H, W) in [0, 1]; token ids (text) as int64 (N, L)."""
    with np.load(path, allow_pickle=False) as data:
        x = (
            data["x"].astype(np.float32) / 255.0
            if data["x"].dtype == np.uint8
            else data["x"].astype(np.int64)
        )
        y = data["y"].astype(np.int64)
        groups = {k[len(GROUP_PREFIX) :]: data[k] for k in data.files if k.startswith(GROUP_PREFIX)}
    return x, y, groups


def write_transform(
    path: Path, classes: list[str], input_shape: tuple[int, ...], sensitive: list[str]
) -> None:
    data = {
        "kind": "images",
        "classes": classes,
        "input_shape": list(input_shape),
        "pixel_scale": "uint8 / 255",
        "sensitive": sensitive,
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_transform(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
