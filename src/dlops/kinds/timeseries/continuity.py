"""Whether a new batch of a series task continues its series in time: each series' first new timestamp
must come after the accepted data's last one, at most `preprocess.max_batch_gap` missing steps later.
A batch that overlaps, goes back in time or skips ahead is quarantined with the series and times named."""

from __future__ import annotations

from typing import Any

import pandas as pd

SHOWN = 5


def continuity_problems(task_cfg: Any, reference: pd.DataFrame, batch: pd.DataFrame) -> list[str]:
    """One sentence per series that does not continue (the first few, then a count)."""
    step = pd.tseries.frequencies.to_offset(task_cfg.frequency)
    allowed = task_cfg.preprocess.max_batch_gap
    last = reference.dropna(subset=["timestamp"]).groupby("series")["timestamp"].max()
    first = batch.dropna(subset=["timestamp"]).groupby("series")["timestamp"].min()
    problems = []
    for series, start in first.items():
        if series not in last.index:
            continue  # a new series starts its own history
        end = last[series]
        if start <= end:
            problems.append(
                f"series {series!r} starts at {start} but the accepted data already reaches {end} "
                "(a batch must not overlap or go back in time)"
            )
            continue
        expected = pd.date_range(end, start, freq=step)  # end, end + step, ..., up to start
        skipped = len(expected) - 2 if len(expected) and expected[-1] == start else len(expected) - 1
        if skipped > allowed:
            problems.append(
                f"series {series!r} starts at {start}, {skipped} steps after the accepted data ends at {end} "
                f"(preprocess.max_batch_gap allows {allowed})"
            )
    if len(problems) > SHOWN:
        problems = [*problems[:SHOWN], f"... and {len(problems) - SHOWN} more series"]
    return problems
