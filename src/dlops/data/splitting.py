"""Seeded train/val/test splits shared by every kind: stratified by label x sensitive groups, one block of
consecutive rows at a time (so rows keep their split as the dataset grows), and over distinct items (a
key: an image's or text's sha1, a table row's features) so that copies never fall in two splits.

A dataset's own (official) split is kept as given: a column whose values are train/val/test (named by
`preprocess.split.column`, or filled by a source's `test:` sub-source). Val is carved from the given
train rows when none are marked val; rows with no given split (later batches) are split by fractions.
Copies across the given splits are reported as leakage, never moved.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from dlops.data.inputs import DataSourceError
from dlops.data.values import filled
from dlops.params import SPLITS

if TYPE_CHECKING:
    from dlops.params import SplitConfig

log = logging.getLogger(__name__)

GIVEN_SPLIT = "__split"  # the column a source's `test:` sub-source fills with "train" / "test"
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
EXAMPLES = 5  # leaked copies named in the report


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
    fractions = (split.train, split.val, split.test)
    assignment = _stratified(pd.DataFrame(parts), label, fractions, split.seed)
    parts_out = {name: labelled.iloc[np.flatnonzero(assignment == i)] for i, name in enumerate(SPLITS)}
    if empty := [name for name, frame in parts_out.items() if frame.empty]:
        raise ValueError(f"split: {len(labelled)} labelled rows leave {empty} empty; use more data")
    return parts_out


def _stratified(
    parts: pd.DataFrame, label: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """Split code (0 train, 1 val, 2 test) of each row, by `fractions` within each stratum of `parts`."""
    stratum = parts.groupby(list(parts), sort=True).ngroup().to_numpy()
    min_rows = math.ceil(2 / min(f for f in fractions if f > 0))
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(parts), dtype=np.int8)
    order = np.argsort(stratum, kind="stable")
    pooled: dict[str, list[np.ndarray]] = {}
    for rows in np.split(order, np.flatnonzero(np.diff(stratum[order])) + 1):
        if len(rows) >= min_rows:
            _assign(rows, fractions, rng, assignment)
        else:
            pooled.setdefault(label[rows[0]], []).append(rows)
    if pooled:
        log.info("split: %d small strata fall back to label-only strata", sum(map(len, pooled.values())))
    for name in sorted(pooled):
        _assign(np.sort(np.concatenate(pooled[name])), fractions, rng, assignment)
    return assignment


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


def _assign(
    rows: np.ndarray, fractions: tuple[float, float, float], rng: np.random.Generator, out: np.ndarray
) -> None:
    rows = rng.permutation(rows)
    n_train, n_val = round(len(rows) * fractions[0]), round(len(rows) * fractions[1])
    if fractions[2] == 0:  # carving val from train: nothing goes to test
        n_val = len(rows) - n_train
    out[rows[:n_train]] = 0
    out[rows[n_train : n_train + n_val]] = 1
    out[rows[n_train + n_val :]] = 2


def split_images(
    raw: pd.DataFrame,
    columns: SplitColumns,
    split: SplitConfig,
    blocks: list[tuple[str, int]] | None = None,
) -> dict[str, pd.DataFrame]:
    """`split_by_key` on the images' or texts' sha1."""
    return split_by_key(raw, columns, split, blocks, key="sha1")


def split_by_key(
    raw: pd.DataFrame,
    columns: SplitColumns,
    split: SplitConfig,
    blocks: list[tuple[str, int]] | None = None,
    key: str = "sha1",
) -> dict[str, pd.DataFrame]:
    """train/val/test frames of `raw`; every row with the same `key` goes where its first copy went.

    `blocks` (consecutive rows: the source's, then each accepted batch) are split one after another,
    each with its own seed; a key already placed by an earlier block keeps its split. Rows with a given
    split (see `given_split_column`) keep it, copies included; val is carved from given train rows when
    no row of the block is given as val."""
    given_column = given_split_column(raw, split)
    given = (
        given_splits(raw, given_column) if given_column else pd.Series(None, index=raw.index, dtype=object)
    )
    where: dict[Any, str] = {}
    carved: set[Any] = set()
    for block_id, block in iter_blocks(raw, blocks or [("base", len(raw))]):
        block_given = given.loc[block.index]
        for name in SPLITS:
            for value in block.loc[block_given == name, key]:
                where.setdefault(value, name)
        if (block_given == "train").any() and not (block_given == "val").any():
            carved |= _carve_val(block[block_given == "train"], columns, split, key, block_id)
        fresh = block[block_given.isna() & ~block[key].isin(where)].drop_duplicates(key, keep="first")
        if fresh.empty:
            continue
        parts = split_frame(fresh, columns, block_split(split, block_id))
        where.update({value: name for name, frame in parts.items() for value in frame[key]})
    assigned = given.where(given.notna(), raw[key].map(where))
    assigned = assigned.mask((assigned == "train") & raw[key].isin(carved), "val")
    assigned = assigned.where(raw[columns.target].notna())  # a row without a label is neither fit nor scored
    return {name: raw[assigned == name] for name in SPLITS}


def _carve_val(
    train: pd.DataFrame, columns: SplitColumns, split: SplitConfig, key: str, block_id: str
) -> set[Any]:
    """The keys of the given train rows that become val: share val / (train + val), stratified."""
    distinct = train.drop_duplicates(key, keep="first")
    distinct = distinct[distinct[columns.target].notna()]
    share = split.val / (split.train + split.val)
    if len(distinct) < 2:
        return set()
    label = filled(distinct[columns.target])
    parts = {"label": label, **{f"s{i}": filled(distinct[a]) for i, a in enumerate(columns.sensitive)}}
    codes = _stratified(
        pd.DataFrame(parts), label, (1 - share, share, 0.0), block_split(split, block_id).seed
    )
    return set(distinct[key].to_numpy()[codes == 1])


def with_given_test(task_cfg: Any, load: Callable[[Any], pd.DataFrame]) -> pd.DataFrame:
    """`load(task_cfg)`; when the source names a `test:` sub-source (a second file, pair or folder),
    the source's rows marked train then the sub-source's rows marked test, in `__split`."""
    src = task_cfg.ingest
    test = getattr(src, "test", None)
    if test is None:
        return load(task_cfg)
    fields = {"path": test} if isinstance(test, str) else test.model_dump()
    parts = []
    for name, update in (("train", {}), ("test", fields)):
        part_src = src.model_copy(update={**update, "test": None})
        frame = load(task_cfg.model_copy(update={"ingest": part_src}))
        parts.append(frame.assign(**{GIVEN_SPLIT: name}))
    return pd.concat(parts, ignore_index=True)


def given_split_column(raw: pd.DataFrame, split: SplitConfig) -> str | None:
    """The column that holds a dataset's own split: `split.column`, or the one a `test:` sub-source
    filled; None when the split is by fractions alone."""
    if split.column:
        return split.column
    return GIVEN_SPLIT if GIVEN_SPLIT in raw.columns else None


def given_splits(raw: pd.DataFrame, column: str) -> pd.Series:
    """The column's values as train / val / test (None where a row has none, e.g. a later batch).

    Accepted spellings: train/training, val/valid/validation/dev, test/testing (any case)."""
    if column not in raw.columns:
        raise DataSourceError(
            f"preprocess.split.column: the data has no column {column!r}; it has {list(raw.columns)}"
        )
    values = raw[column]
    text = values.where(values.isna(), values.astype(str).str.strip().str.lower())
    mapped = text.map(SPLIT_NAMES)
    unknown = sorted(set(values[mapped.isna() & values.notna()].astype(str)))
    if unknown:
        raise DataSourceError(
            f"split column {column!r}: values {unknown[:EXAMPLES]} are not a split; use train, val "
            "(or validation/dev) or test"
        )
    return mapped.astype(object).where(mapped.notna(), None)


def split_provenance(
    raw: pd.DataFrame, splits: dict[str, pd.DataFrame], split: SplitConfig, key: str, label: str = "source"
) -> dict[str, Any]:
    """How the split was made (given or by fractions, seed, sizes) and the copies that cross splits:
    their count and a few examples (`label` column when the rows have one, else the key)."""
    column = given_split_column(raw, split)
    sizes = {name: len(frame) for name, frame in splits.items()}
    if column:
        given = given_splits(raw, column)
        how = {
            "how": "given",
            "column": split.column or "test: sub-source",
            "given": {name: int((given == name).sum()) for name in SPLITS},
            "val_carved_from_train": not bool((given == "val").any()),
        }
    else:
        how = {"how": "fractions", "train": split.train, "val": split.val, "test": split.test}
    seen: dict[Any, set[str]] = {}
    for name, frame in splits.items():
        for value in frame[key].unique():
            seen.setdefault(value, set()).add(name)
    crossing = [value for value, names in seen.items() if len(names) > 1]
    examples: list[str] = []
    if crossing:
        rows = raw[raw[key].isin(crossing[:EXAMPLES])].drop_duplicates(key)
        names = rows[label] if label in rows.columns else pd.Series([f"row {i}" for i in rows.index])
        examples = [str(v) for v in names.head(EXAMPLES)]
        log.warning(
            "split: %d distinct items appear in more than one given split (leakage), e.g. %s",
            len(crossing),
            examples,
        )
    return {
        **how,
        "seed": split.seed,
        "sizes": sizes,
        "leakage": {"count": len(crossing), "examples": examples},
    }


def provenance_tag(provenance: dict[str, Any]) -> str:
    """One line for the lineage tag `data.split`."""
    if provenance.get("how") == "given":
        carved = ", val carved from train" if provenance.get("val_carved_from_train") else ""
        text = f"given by {provenance['column']}{carved}"
    else:
        text = f"fractions {provenance['train']}/{provenance['val']}/{provenance['test']}"
    leaks = provenance.get("leakage", {}).get("count", 0)
    return f"{text}, seed {provenance['seed']}, {leaks} items across splits"


def duplicates_across_splits(splits: dict[str, pd.DataFrame]) -> int:
    """How many distinct images appear in more than one split (checked, not assumed)."""
    seen: dict[str, str] = {}
    crossing = set()
    for name, frame in splits.items():
        for sha in frame["sha1"].unique():
            if seen.setdefault(sha, name) != name:
                crossing.add(sha)
    return len(crossing)
