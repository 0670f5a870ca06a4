"""The regular time grid of a frequency: each timestamp's step number, for gaps, order and series lengths.

`grid_positions` maps timestamps to step numbers on the grid of a pandas offset alias (`h`, `15min`,
`D`, `B`, `W`, `MS`, `QS`, `YS`, ...), so that consecutive grid points differ by exactly 1 whatever the
calendar does: a month is one step whether it has 28 or 31 days. Fixed-length frequencies (`min`, `h`,
`D`) give float positions (a timestamp off the grid lands between two steps; callers round the
differences); calendar ones (`B`, `W`, months, quarters, years) give whole periods, anchors ignored.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

FIXED_UNITS = {"min": "min", "h": "h", "D": "D"}
PERIODS = {
    "W": "W",
    "MS": "M",
    "ME": "M",
    "M": "M",
    "QS": "Q",
    "QE": "Q",
    "Q": "Q",
    "YS": "Y",
    "YE": "Y",
    "Y": "Y",
}
EPOCH = pd.Timestamp("1970-01-01")


def split_frequency(frequency: str) -> tuple[int, str]:
    """(multiple, base alias) of e.g. `15min` -> (15, "min"), `W-MON` -> (1, "W")."""
    match = re.fullmatch(r"(\d*)([A-Za-z]+)(-[A-Z]{3})?", frequency.strip())
    if match is None:
        raise ValueError(f"frequency {frequency!r} is not a pandas offset alias")
    return int(match.group(1) or 1), match.group(2)


def grid_positions(timestamps: pd.Series, frequency: str) -> pd.Series:
    """Each timestamp's step number on the frequency's grid (float; NaN for NaT), same index."""
    multiple, base = split_frequency(frequency)
    values = pd.to_datetime(timestamps)
    missing = values.isna().to_numpy()
    if base in FIXED_UNITS:
        step = pd.Timedelta(multiple, unit=FIXED_UNITS[base])
        positions = ((values - EPOCH) / step).to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(positions, index=timestamps.index)
    if base == "B":
        days = values.fillna(EPOCH).to_numpy().astype("datetime64[D]")
        counts = np.busday_count(np.datetime64("1970-01-01"), days).astype(np.float64)
    elif base in PERIODS:
        counts = values.dt.to_period(PERIODS[base]).array.asi8.astype(np.float64)
    else:
        raise ValueError(f"frequency {frequency!r}: no regular grid known for {base!r}")
    counts[missing] = np.nan
    return pd.Series(counts / multiple, index=timestamps.index)
