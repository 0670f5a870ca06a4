"""Seeded synthetic series (`source: synthetic-series`) in the raw table layout of dlops.kinds.timeseries.

Each series i (named S000, S001, ...) is drawn on an absolute step grid t = 0, 1, 2, ... from `start` at
`frequency`:

    value(t) = level * shift(t) * (1 + trend * t / BLOCK + a1 sin(2pi (t - phase) / P1) + a2 sin(2pi t / P2))
               + std * z(t)   (+/- 5 std at outliers),          std = noise * level (x noisy_region_factor)

- level ~ U(50, 150); trend ~ U(0, 0.08) of the level per BLOCK steps; a1 ~ U(0.1, 0.3), a2 ~ U(0.05, 0.15).
- seasons: hourly data has a daily (P1 = 24) and a weekly (P2 = 168) season; daily data has a weekly
  (P1 = 7) and a yearly (P2 = 365.25) one.
- region: even series are "calm", odd ones "noisy": noise x `noisy_region_factor` and the P1 season
  shifted by `phase` = 4 hours (hourly) or 2 days (daily).
- level shifts: every BLOCK steps hold `level_shifts` steps of the level by a factor 1 +/- U(0.1, 0.2),
  at uniform random times; they accumulate (so the default 1008-step series has exactly that many).
- outliers: each step with probability `outlier_rate`, +/- 5 std (std at least 1 % of the level).
- missing timestamps: each step with probability `missing_rate` is dropped from the table.

Reproducible continuation: the per-step draws (noise, outliers, missing) come from a generator keyed by
(seed, series, block of BLOCK steps) and the per-series parameters and shifts from one keyed by (seed,
series), so every draw is a function of the absolute step. `offset` skips the first `offset` steps: the
rows of `length=n+k` after step n are exactly those of `offset=n, length=k`, and a batch continues the
task's series later in time. Series i is also the same whatever `series` is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlops.params.tasks_timeseries import SyntheticSeriesSource

BLOCK = 1008  # steps per draw block: six weeks of hours, the schema's default length
REGIONS = ("calm", "noisy")
# frequency: (P1, P2, phase shift of the noisy region's P1 season)
SEASONS = {"h": (24.0, 168.0, 4.0), "D": (7.0, 365.25, 2.0)}
OUTLIER_STDS = 5.0
MIN_OUTLIER_STD = 0.01  # of the level, so outliers stand out even at noise 0


def generate_series(src: SyntheticSeriesSource) -> pd.DataFrame:
    """The raw table: series, timestamp, value, region, source; rows by series, then time."""
    steps = np.arange(src.offset, src.offset + src.length, dtype=np.int64)
    width = max(3, len(str(src.series - 1)))
    names, kept, values, regions = [], [], [], []
    for i in range(src.series):
        step, value = _draw_series(src, i, steps)
        names.append(np.full(len(step), f"S{i:0{width}d}", dtype=object))
        regions.append(np.full(len(step), REGIONS[i % 2], dtype=object))
        kept.append(step)
        values.append(value)
    step = np.concatenate(kept)
    timestamps = pd.Timestamp(src.start) + pd.to_timedelta(step, unit=src.frequency)
    series = np.concatenate(names)
    iso = np.datetime_as_string(timestamps.values.astype("datetime64[s]"), unit="s")
    return pd.DataFrame(
        {
            "series": pd.array(series, dtype="str"),
            "timestamp": timestamps.values.astype("datetime64[ns]"),
            "value": np.concatenate(values).astype(np.float64),
            "region": pd.array(np.concatenate(regions), dtype="str"),
            "source": pd.array(series + "@" + iso.astype(object), dtype="str"),
        }
    )


def _draw_series(src: SyntheticSeriesSource, i: int, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the steps kept, their values) of series i over the absolute steps `steps`."""
    params = np.random.default_rng([src.seed, i, 0])
    level = params.uniform(50.0, 150.0)
    trend = params.uniform(0.0, 0.08)
    a1, a2 = params.uniform(0.1, 0.3), params.uniform(0.05, 0.15)
    p1, p2, phase_shift = SEASONS[src.frequency]
    noisy = i % 2 == 1
    phase = phase_shift if noisy else 0.0
    std = level * src.noise * (src.noisy_region_factor if noisy else 1.0)

    t = steps.astype(np.float64)
    seasons = a1 * np.sin(2 * np.pi * (t - phase) / p1) + a2 * np.sin(2 * np.pi * t / p2)
    shape = 1 + trend * t / BLOCK + seasons
    z, outlier_u, outlier_sign, missing_u = _step_draws(src.seed, i, steps)
    value = level * _shift_factor(src.seed, i, src.level_shifts, steps) * shape + std * z
    outlier = outlier_u < src.outlier_rate
    jump = OUTLIER_STDS * max(std, MIN_OUTLIER_STD * level)
    value = np.where(outlier, value + np.where(outlier_sign < 0.5, -jump, jump), value)
    keep = missing_u >= src.missing_rate
    return steps[keep], value[keep]


def _step_draws(seed: int, i: int, steps: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-step noise, outlier and missing draws, each a function of (seed, series, absolute step)."""
    first, last = int(steps[0]) // BLOCK, int(steps[-1]) // BLOCK
    blocks = []
    for block in range(first, last + 1):
        rng = np.random.default_rng([seed, i, 1, block])
        blocks.append(
            np.stack([rng.standard_normal(BLOCK), rng.random(BLOCK), rng.random(BLOCK), rng.random(BLOCK)])
        )
    draws = np.concatenate(blocks, axis=1)[:, steps - first * BLOCK]
    return tuple(draws)


def _shift_factor(seed: int, i: int, per_block: int, steps: np.ndarray) -> np.ndarray:
    """The level multiplier at each step: the product of every level shift at or before it."""
    if per_block == 0:
        return np.ones(len(steps))
    blocks = int(steps[-1]) // BLOCK + 1
    # one stream per series, a fixed number of draws per block: block b's shifts never depend on length
    draws = np.random.default_rng([seed, i, 2]).random((blocks, per_block, 3))
    times = (np.arange(blocks)[:, None] * BLOCK + draws[..., 0] * BLOCK).ravel()
    sizes = (0.1 + 0.1 * draws[..., 1]) * np.where(draws[..., 2] < 0.5, -1.0, 1.0)
    order = np.argsort(times, kind="stable")
    times, factors = times[order], np.cumprod(1 + sizes.ravel()[order])
    applied = np.searchsorted(times, steps, side="right")  # shifts at or before each step
    return np.concatenate([[1.0], factors])[applied]
