"""The fitted tabular transform (JSON, never pickle) and batch augmentation.

Every statistic of the transform (medians, scaling, category levels, classes) comes from the training
split only, so validation and test rows never leak into what the model sees.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlops.data.values import MISSING_GROUP, as_str, filled, to_str
from dlops.errors import BadInput
from dlops.files import write_json
from dlops.params import ColumnRoles, PreprocessConfig, TabularAugmentConfig

if TYPE_CHECKING:
    import torch

FORMAT = "dlops.tabular_transform/1"
LABEL = "__label__"
GROUP_PREFIX = "__group__."
MAX_SCALES = 1e6  # serving refuses a number this many scales from the training centre (float32 overflow)
OTHER, MISSING = "__other__", "__missing__"


# -------------------------------------------------------------------------------------------- transform
@dataclass(frozen=True)
class NumericSpec:
    """Median imputation, then (x - center) / scale; `indicator` adds a 0/1 missing column."""

    name: str
    median: float
    center: float
    scale: float
    indicator: bool


@dataclass(frozen=True)
class CategoricalSpec:
    """One-hot over `levels`, plus __other__ (unseen or rare) and __missing__ columns."""

    name: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class TabularTransform:
    """Raw table -> float32 features and int64 labels, fitted on the training split only.

    A numeric column gets a missing-indicator feature only if it had missing values in training (a
    column never seen missing would give a constant feature); later missing values are still imputed.
    """

    target: str
    classes: list[str]
    positive_label: str | None
    sensitive: list[str]
    scaling: str
    numeric: tuple[NumericSpec, ...]
    categorical: tuple[CategoricalSpec, ...]

    @classmethod
    def fit(cls, train_df: pd.DataFrame, columns: ColumnRoles, cfg: PreprocessConfig) -> TabularTransform:
        """Learn medians, scaling, category levels and classes from `train_df`."""
        _require(train_df, [columns.target, *columns.features], "training split")
        positive = None if columns.positive_label is None else to_str(columns.positive_label)
        return cls(
            target=columns.target,
            classes=_classes(as_str(train_df[columns.target]), positive),
            positive_label=positive,
            sensitive=list(columns.sensitive),
            scaling=cfg.scaling,
            numeric=tuple(_fit_numeric(train_df[c], c, cfg.scaling) for c in columns.numeric),
            categorical=tuple(
                _fit_categorical(train_df[c], c, cfg.max_categories) for c in columns.categorical
            ),
        )

    @property
    def input_columns(self) -> list[str]:
        """The raw columns the model reads, numeric then categorical."""
        return [s.name for s in self.numeric] + [s.name for s in self.categorical]

    @property
    def feature_names(self) -> list[str]:
        names = []
        for num in self.numeric:
            names += [num.name, f"{num.name}={MISSING}"] if num.indicator else [num.name]
        for cat in self.categorical:
            names += [f"{cat.name}={level}" for level in (*cat.levels, OTHER, MISSING)]
        return names

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Features (N, F) float32; unseen categories go to __other__ and never raise."""
        _require(df, [s.name for s in self.numeric] + [s.name for s in self.categorical], "input")
        out = np.zeros((len(df), len(self.feature_names)), dtype=np.float32)  # (N, F)
        j = 0
        for num in self.numeric:
            values = _numeric(df[num.name], num.name)
            missing = np.isnan(values)
            out[:, j] = (np.where(missing, num.median, values) - num.center) / num.scale
            j += 1
            if num.indicator:
                out[:, j] = missing
                j += 1
        rows = np.arange(len(df))
        for cat in self.categorical:
            values = as_str(df[cat.name])
            code = pd.Index(cat.levels, dtype=object).get_indexer(values)  # -1: unseen or missing
            missing = pd.isna(values)
            known = code >= 0
            out[rows[known], j + code[known]] = 1.0
            out[:, j + len(cat.levels)] = ~known & ~missing
            out[:, j + len(cat.levels) + 1] = missing
            j += len(cat.levels) + 2
        return out

    def check_servable(self, df: pd.DataFrame) -> None:
        """Refuse what `transform` would silently turn into a wrong answer when serving: ±inf (which
        training treats as missing) and numbers so far from the training data (over MAX_SCALES of its
        scale from its centre) that the network's float32 arithmetic overflows. The ValueError names
        the column, the rows and a value; missing values (NaN, None) stay allowed, as in training."""
        _require(df, [s.name for s in self.numeric] + [s.name for s in self.categorical], "input")
        for num in self.numeric:
            values = pd.to_numeric(df[num.name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.isinf(values) | (np.abs(values - num.center) > MAX_SCALES * num.scale)
            if bad.any():
                rows = np.flatnonzero(bad)
                more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
                listed = ", ".join(map(str, rows[:5])) + more
                raise ValueError(
                    f"input column {num.name!r}, row(s) {listed}: {float(values[rows[0]])!r} is "
                    + ("not a finite number" if np.isinf(values[rows[0]]) else "out of range")
                    + f" (training data: centre {num.center:.4g}, scale {num.scale:.4g}; values within "
                    f"{MAX_SCALES:.0e} scales are accepted, missing values are imputed)"
                )

    def encode_labels(self, series: pd.Series) -> np.ndarray:
        """Class indices (N,) int64 in `classes` order; a label unseen in training raises ValueError."""
        values = as_str(series)
        index = pd.Index(self.classes, dtype=object).get_indexer(values)
        if (index < 0).any():
            unseen = sorted({MISSING_GROUP if v is None else v for v in values[index < 0]})
            raise ValueError(
                f"{self.target}: label(s) not seen in training: {unseen[:10]}; known: {self.classes}"
            )
        return index.astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        data["feature_names"] = self.feature_names  # for readers of the JSON; recomputed on load
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularTransform:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} transform (format={data.get('format')!r})")
        transform = cls(
            target=data["target"],
            classes=list(data["classes"]),
            positive_label=data["positive_label"],
            sensitive=list(data["sensitive"]),
            scaling=data["scaling"],
            numeric=tuple(NumericSpec(**spec) for spec in data["numeric"]),
            categorical=tuple(CategoricalSpec(s["name"], tuple(s["levels"])) for s in data["categorical"]),
        )
        if "feature_names" in data and data["feature_names"] != transform.feature_names:
            raise ValueError("transform JSON: feature_names do not match its numeric/categorical specs")
        return transform

    def to_json(self, path: Path) -> None:
        """Write atomically, keys sorted, so identical fits give identical files."""
        write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: Path) -> TabularTransform:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def make_split_frame(transform: TabularTransform, raw_df: pd.DataFrame) -> pd.DataFrame:
    """The processed split (docs/pipeline.md, "File formats"): float32 features, `__label__` int64,
    `__group__.<attr>` str."""
    features = pd.DataFrame(transform.transform(raw_df), columns=transform.feature_names)
    extra: dict[str, Any] = {LABEL: transform.encode_labels(raw_df[transform.target])}
    _require(raw_df, list(transform.sensitive), "input")
    for attr in transform.sensitive:
        extra[GROUP_PREFIX + attr] = filled(raw_df[attr])
    return pd.concat([features, pd.DataFrame(extra)], axis=1)


def _fit_numeric(series: pd.Series, name: str, scaling: str) -> NumericSpec:
    values = _numeric(series, name)
    missing = np.isnan(values)
    median = float(np.median(values[~missing])) if (~missing).any() else 0.0
    filled = np.where(missing, median, values)
    if scaling == "standard":
        center, scale = float(filled.mean()), float(filled.std())
    elif scaling == "minmax":
        center, scale = float(filled.min()), float(filled.max() - filled.min())
    else:
        center, scale = 0.0, 1.0
    # A constant column would divide by zero; scale 1 keeps it a (harmless) constant feature.
    return NumericSpec(name, median, center, scale if scale > 0 else 1.0, bool(missing.any()))


def _fit_categorical(series: pd.Series, name: str, max_categories: int) -> CategoricalSpec:
    counts = pd.Series(as_str(series)).value_counts(dropna=True)
    ranked = sorted(((-n, level) for level, n in counts.items() if level not in (OTHER, MISSING)))
    # Top levels by frequency (ties by name), stored sorted so feature names read alphabetically.
    return CategoricalSpec(name, tuple(sorted(level for _, level in ranked[:max_categories])))


def _classes(labels: np.ndarray, positive: str | None) -> list[str]:
    seen = sorted({v for v in labels if v is not None})
    if len(seen) < 2:
        raise ValueError(f"the training split has {len(seen)} class(es) {seen}; a classifier needs 2 or more")
    if positive is None:
        return seen
    if positive not in seen:  # a typo in params ('>50k'): bad input, named like the data's values
        raise BadInput(
            f"columns.positive_label: {positive!r} is not a value of the target (after str()): {seen}"
        )
    # Binary: index 1 is the positive class. Multiclass keeps sorted order.
    return [*(c for c in seen if c != positive), positive] if len(seen) == 2 else seen


def _numeric(series: pd.Series, name: str) -> np.ndarray:
    """float64 values with NaN for missing and for +-inf."""
    try:
        values = pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"numeric column {name!r} holds a value that is not a number: {exc}") from None
    values[~np.isfinite(values)] = np.nan
    return values


def _require(df: pd.DataFrame, names: list[str], where: str) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; have {list(df.columns)}")


# ------------------------------------------------------------------------------------------ augmentation
def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    cfg: TabularAugmentConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise and/or per-sample mixup on one TRAINING batch; mixup returns soft targets (B, K).

    Random numbers are drawn on the generator's device and then moved, so a CPU generator (whose state
    the resume checkpoint saves) works for a batch on the GPU too.
    """
    import torch

    gen_device = generator.device
    if cfg.noise_std > 0:
        noise = torch.randn(x.shape, generator=generator, device=gen_device)  # (B, F)
        x = x + cfg.noise_std * noise.to(device=x.device, dtype=x.dtype)
    if cfg.mixup_alpha > 0:
        batch = x.shape[0]
        # torch's Beta sampler takes no generator; a numpy Generator seeded from ours stays reproducible.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device))
        lam = np.random.default_rng(seed).beta(cfg.mixup_alpha, cfg.mixup_alpha, size=batch)
        lam_x = torch.as_tensor(lam, dtype=x.dtype, device=x.device).unsqueeze(1)  # (B, 1)
        perm = torch.randperm(batch, generator=generator, device=gen_device).to(x.device)
        if y.is_floating_point():
            soft = y.float()  # already soft targets (B, K)
        else:
            soft = torch.nn.functional.one_hot(y.long(), num_classes).float()  # (B, K)
        lam_y = lam_x.float()
        x = lam_x * x + (1 - lam_x) * x[perm]
        y = lam_y * soft + (1 - lam_y) * soft[perm]
    return x, y
