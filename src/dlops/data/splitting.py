"""Seeded train/val/test splits shared by every kind: stratified by label x sensitive groups, one block of
consecutive rows at a time (so rows keep their split as the dataset grows), and over distinct items (by
sha1) so that copies of one image or text never fall in two splits.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from dlops.data.values import filled
from dlops.params import SPLITS

if TYPE_CHECKING:
    from dlops.params import SplitConfig

log = logging.getLogger(__name__)


class SplitColumns(Protocol):
    """What a split reads of a task's `columns` (any kind's): the label and the sensitive attributes."""

    @property
    def target(self) -> str: ...

    @property
    def sensitive(self) -> list[str]: ...


def split_frame(df: pd.DataFrame, columns: SplitColumns, split: SplitConfig) -> dict[str, pd.DataFrame]:
    """Seeded train/val/test split, stratified by label x every sensitive attribute (original index kept).

    Strata with fewer than 2 / min(fraction) rows cannot reach every split, so their rows are pooled
    by label and split together. Rows without a label are dropped (they can be neither fit nor scored).
    """
    labelled = df[df[columns.target].notna()]
    if dropped := len(df) - len(labelled):
        log.warning("split: dropping %d rows with a missing %r", dropped, columns.target)
    if len(labelled) < len(SPLITS):
        raise ValueError(f"split: {len(labelled)} labelled rows cannot fill train, val and test")
    label = filled(labelled[columns.target])
    parts = {"label": label, **{f"s{i}": filled(labelled[a]) for i, a in enumerate(columns.sensitive)}}
    stratum = pd.DataFrame(parts).groupby(list(parts), sort=True).ngroup().to_numpy()
    min_rows = math.ceil(2 / min(split.train, split.val, split.test))

    rng = np.random.default_rng(split.seed)
    assignment = np.empty(len(labelled), dtype=np.int8)
    order = np.argsort(stratum, kind="stable")
    pooled: dict[str, list[np.ndarray]] = {}
    for rows in np.split(order, np.flatnonzero(np.diff(stratum[order])) + 1):
        if len(rows) >= min_rows:
            _assign(rows, split, rng, assignment)
        else:
            pooled.setdefault(label[rows[0]], []).append(rows)
    if pooled:
        log.info("split: %d small strata fall back to label-only strata", sum(map(len, pooled.values())))
    for name in sorted(pooled):
        _assign(np.sort(np.concatenate(pooled[name])), split, rng, assignment)
    parts_out = {name: labelled.iloc[np.flatnonzero(assignment == i)] for i, name in enumerate(SPLITS)}
    if empty := [name for name, frame in parts_out.items() if frame.empty]:
        raise ValueError(f"split: {len(labelled)} labelled rows leave {empty} empty; use more data")
    return parts_out


def split_in_blocks(
    df: pd.DataFrame,
    columns: SplitColumns,
    split: SplitConfig,
    blocks: list[tuple[str, int]],
) -> dict[str, pd.DataFrame]:
    """`split_frame` on each block of consecutive rows (the source's rows, then each accepted batch), each
    with its own seed: a grown dataset keeps every earlier row in its split, so a model is never tested
    on rows an earlier version trained on."""
    if len(blocks) == 1:
        return split_frame(df, columns, split)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in SPLITS}
    for block_id, block in iter_blocks(df, blocks):
        for name, frame in split_frame(block, columns, block_split(split, block_id)).items():
            parts[name].append(frame)
    return {name: pd.concat(frames) for name, frames in parts.items()}


def iter_blocks(df: pd.DataFrame, blocks: list[tuple[str, int]]) -> Iterator[tuple[str, pd.DataFrame]]:
    """(block id, its consecutive rows of df) for each (block id, row count), in order."""
    start = 0
    for block_id, rows in blocks:
        yield block_id, df.iloc[start : start + rows]
        start += rows


def block_split(split: SplitConfig, block_id: str) -> SplitConfig:
    """The split of one block: the configured seed for the source's rows, a seed from the id for a batch."""
    if block_id == "base":
        return split
    return split.model_copy(update={"seed": zlib.crc32(f"{split.seed}:{block_id}".encode())})


def _assign(rows: np.ndarray, split: SplitConfig, rng: np.random.Generator, out: np.ndarray) -> None:
    rows = rng.permutation(rows)
    n_train, n_val = round(len(rows) * split.train), round(len(rows) * split.val)
    out[rows[:n_train]] = 0
    out[rows[n_train : n_train + n_val]] = 1
    out[rows[n_train + n_val :]] = 2


def split_images(
    raw: pd.DataFrame,
    columns: SplitColumns,
    split: SplitConfig,
    blocks: list[tuple[str, int]] | None = None,
) -> dict[str, pd.DataFrame]:
    """train/val/test frames of `raw`; every copy of an image (same sha1) goes where its first copy went.

    `blocks` (consecutive rows: the source's, then each accepted batch) are split one after another,
    each with its own seed; an image already placed by an earlier block keeps its split."""
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
