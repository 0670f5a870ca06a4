"""A seeded, census-like income table whose unfairness is a single knob (`bias`).

Generating model (every draw comes from one `numpy.random.Generator(seed)`, in a fixed order):

1. Sensitive attributes, independent of each other:
   sex ~ {Female 0.45, Male 0.55}; race ~ {White 0.62, Black 0.15, Asian 0.12, Other 0.11}.
2. Legitimate features, drawn independently of sex and race (so a model of them alone is fair):
   age = clip(17 + Gamma(2.2, 9.5), 17, 90); education_years = clip(N(10.5, 2.8), 1, 20);
   hours_per_week = clip(N(40, 11), 1, 99); capital_gain = 0 with p 0.92, else
   clip(LogNormal(8.3, 1), 1, 99_999); workclass, occupation, marital_status from the tables below.
3. The proxy: neighborhood_income = max(52_000 + 14_000 z, 5_000) dollars, z = P[race] + S[sex] + N(0, 0.55),
   P = {White +0.28, Black -1.10, Asian +0.45, Other -0.55}, S = {Female -0.44, Male +0.36}. It is
   strongly tied to race (corr ~0.6) and also carries sex, so a model that sees neither can still
   learn both through it. P, S and the effects below are centred (population mean ~0).
4. The label: income = ">50K" iff u < sigmoid(logit), where
   logit = -2.35 + 0.08 a - 0.0016 a^2 + 0.68 (education_years - 10.5) + 0.063 (hours_per_week - 40)
           + 2.9 [capital_gain > 0] + W[workclass] + O[occupation] + M[marital_status]
           + bias * (X[sex] + R[race])      # direct effect, X = {Female -0.55, Male +0.45},
                                            #   R = {White +0.17, Black -0.60, Asian +0.20, Other -0.35}
           + bias * 0.9 * z                 # effect of the proxy
   with a = age - 38. u is U(0, 1), spread evenly within each (sex, race) group (a Latin hypercube per
   group), so at bias = 0 group positive rates differ only by the features' sampling noise. The
   positive rate is ~29 % at bias 0 and ~33 % at bias 2; the Bayes balanced accuracy is ~0.8.
5. Corruption, after the label (noise, not signal): `missing_rate` of the cells of each column in
   MISSING_COLUMNS become missing (NaN / None), and `outlier_rate` of the rows get an extreme but valid
   hours_per_week (90-99) or capital_gain (99_999, the census top-code).

Distribution shift (`shift`, all zero by default = the table above, byte for byte): `shift.age`,
`shift.education_years` and `shift.hours_per_week` are added to those features before rounding and
clipping (covariate shift: the label follows the same rule from the shifted features), and
`shift.positive_rate` is added to the logit (prior shift). No extra random draws either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlops.params import SyntheticIncomeSource

SEXES = ("Female", "Male")
SEX_P = (0.45, 0.55)
SEX_PROXY = (-0.44, 0.36)
SEX_EFFECT = (-0.55, 0.45)

RACES = ("White", "Black", "Asian", "Other")
RACE_P = (0.62, 0.15, 0.12, 0.11)
RACE_PROXY = (0.28, -1.10, 0.45, -0.55)
RACE_EFFECT = (0.17, -0.60, 0.20, -0.35)

# level: (frequency, effect on the logit)
WORKCLASS = {
    "Private": (0.70, 0.0),
    "Self-emp": (0.11, 0.6),
    "Government": (0.14, 0.3),
    "Without-pay": (0.05, -2.7),
}
OCCUPATION = {
    "Exec-managerial": (0.13, 1.6),
    "Prof-specialty": (0.13, 1.4),
    "Tech-support": (0.08, 0.7),
    "Sales": (0.12, 0.4),
    "Craft-repair": (0.14, 0.0),
    "Adm-clerical": (0.13, -0.5),
    "Machine-op": (0.10, -0.7),
    "Service": (0.17, -1.6),
}
MARITAL = {
    "Married": (0.47, 2.3),
    "Never-married": (0.32, -1.8),
    "Divorced": (0.14, -0.7),
    "Separated": (0.04, -1.1),
    "Widowed": (0.03, -0.9),
}

PROXY_MEAN, PROXY_SD = 52_000.0, 14_000.0
MISSING_COLUMNS = ("education_years", "hours_per_week", "workclass", "occupation")
COLUMNS = (
    "age",
    "education_years",
    "hours_per_week",
    "capital_gain",
    "neighborhood_income",
    "workclass",
    "occupation",
    "marital_status",
    "sex",
    "race",
    "income",
)


def generate_income(cfg: SyntheticIncomeSource) -> pd.DataFrame:
    """The table described in the module docstring; identical cfg gives an identical frame."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.rows
    sex = rng.choice(len(SEXES), size=n, p=SEX_P)
    race = rng.choice(len(RACES), size=n, p=RACE_P)

    shift = cfg.shift
    age = np.clip(np.rint(17 + rng.gamma(2.2, 9.5, n) + shift.age), 17, 90)
    education = np.clip(np.rint(rng.normal(10.5, 2.8, n) + shift.education_years), 1, 20)
    hours = np.clip(np.rint(rng.normal(40, 11, n) + shift.hours_per_week), 1, 99)
    has_gain = rng.random(n) >= 0.92
    capital_gain = np.where(has_gain, np.clip(np.rint(rng.lognormal(8.3, 1.0, n)), 1, 99_999), 0.0)
    workclass, w_effect = _categorical(rng, WORKCLASS, n)
    occupation, o_effect = _categorical(rng, OCCUPATION, n)
    marital, m_effect = _categorical(rng, MARITAL, n)

    z = np.take(RACE_PROXY, race) + np.take(SEX_PROXY, sex) + rng.normal(0.0, 0.55, n)
    neighborhood = np.clip(np.rint(PROXY_MEAN + PROXY_SD * z), 5_000, None)

    a = age - 38
    logit = (
        -2.35
        + 0.08 * a
        - 0.0016 * a**2
        + 0.68 * (education - 10.5)
        + 0.063 * (hours - 40)
        + 2.9 * has_gain
        + w_effect
        + o_effect
        + m_effect
    )
    logit += cfg.bias * (np.take(SEX_EFFECT, sex) + np.take(RACE_EFFECT, race))
    logit += cfg.bias * 0.9 * (neighborhood - PROXY_MEAN) / PROXY_SD
    logit += shift.positive_rate  # prior shift
    positive = _group_stratified_uniform(rng, sex * len(RACES) + race) < 1.0 / (1.0 + np.exp(-logit))

    frame = pd.DataFrame(
        {
            "age": age,
            "education_years": education,
            "hours_per_week": hours,
            "capital_gain": capital_gain,
            "neighborhood_income": neighborhood,
            "workclass": workclass,
            "occupation": occupation,
            "marital_status": marital,
            "sex": np.array(SEXES, dtype=object)[sex],
            "race": np.array(RACES, dtype=object)[race],
            "income": np.where(positive, ">50K", "<=50K").astype(object),
        }
    )
    _inject_outliers(frame, rng, cfg.outlier_rate)
    _inject_missing(frame, rng, cfg.missing_rate)
    return frame


def _categorical(
    rng: np.random.Generator, table: dict[str, tuple[float, float]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw levels by frequency; return (levels, their logit effects)."""
    levels = np.array(list(table), dtype=object)
    freq = np.array([f for f, _ in table.values()])
    effect = np.array([e for _, e in table.values()])
    codes = rng.choice(len(levels), size=n, p=freq / freq.sum())
    return levels[codes], effect[codes]


def _group_stratified_uniform(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """U(0, 1) draws, one per row, spread evenly over (0, 1) within each group (Latin hypercube)."""
    u = np.empty(len(groups))
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        u[rows] = (rng.permutation(len(rows)) + rng.random(len(rows))) / len(rows)
    return u


def _inject_outliers(frame: pd.DataFrame, rng: np.random.Generator, rate: float) -> None:
    rows = rng.choice(len(frame), size=round(rate * len(frame)), replace=False)
    to_hours = rng.random(len(rows)) < 0.5
    hours_rows, gain_rows = rows[to_hours], rows[~to_hours]
    frame.loc[hours_rows, "hours_per_week"] = rng.integers(90, 100, len(hours_rows)).astype(float)
    frame.loc[gain_rows, "capital_gain"] = 99_999.0  # the census top-code


def _inject_missing(frame: pd.DataFrame, rng: np.random.Generator, rate: float) -> None:
    # Missing completely at random, an exact count per column so the rate is what params.yaml says.
    for column in MISSING_COLUMNS:
        rows = rng.choice(len(frame), size=round(rate * len(frame)), replace=False)
        frame.loc[rows, column] = np.nan if frame[column].dtype.kind == "f" else None
