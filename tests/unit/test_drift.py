"""Drift statistics (PSI, KS, table/text/image reports) on synthetic batches with known shifts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dlops.kinds.images.drift import image_drift
from dlops.kinds.images.drift import summary as image_summary
from dlops.kinds.tabular.drift import summary as table_summary
from dlops.kinds.tabular.drift import table_drift
from dlops.kinds.text.drift import summary as text_summary
from dlops.kinds.text.drift import text_drift
from dlops.monitoring.drift import categorical_psi, ks, psi, summary_markdown


def _json(report: dict[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, allow_nan=False)


def test_psi_same_distribution_small_shifted_large() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, 5000)
    assert psi(reference, rng.normal(0.0, 1.0, 5000)) < 0.05
    assert psi(reference, rng.normal(1.0, 1.0, 5000)) > 0.25


def test_psi_matches_hand_computed_value() -> None:
    # Median edge 2.5: reference shares (0.5, 0.5), current (0.75, 0.25); the empty missing bins cancel.
    expected = 0.25 * math.log(1.5) + 0.25 * math.log(2.0)  # = 0.274653
    reference, current = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0, 4.0])
    assert psi(reference, current, bins=2) == pytest.approx(expected)


def test_psi_missing_values_and_out_of_range() -> None:
    reference = np.arange(100, dtype=float)
    assert psi(reference, reference.copy()) == pytest.approx(0.0)
    # Values beyond the reference range fall in the end bins rather than being dropped.
    assert psi(reference, reference + 1000) > 1.0
    # A batch that is half missing drifts even where its present values match.
    with_missing = np.concatenate([reference[::2], np.full(50, np.nan)])
    expected = 0.5 * math.log(0.5 / 1e-4)  # missing bin: 0 (as 1e-4) → 0.5; ten bins 0.1 → 0.05 add 0.5 ln 2
    assert psi(reference, with_missing) == pytest.approx(expected + 0.5 * math.log(2.0), rel=1e-3)
    with pytest.raises(ValueError):
        psi(np.array([]), reference)


def test_categorical_psi_detects_new_dominant_level() -> None:
    reference = np.array(["a"] * 50 + ["b"] * 50, dtype=object)
    assert categorical_psi(reference, reference[::-1]) == pytest.approx(0.0)
    current = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 80, dtype=object)
    assert categorical_psi(reference, current) > 1.0
    assert categorical_psi(reference, np.array(["a", "b", None, None], dtype=object)) > 0.2


def test_ks_statistic_and_pvalue() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=2000)
    statistic, pvalue = ks(reference, rng.normal(size=2000))
    assert statistic < 0.06 and pvalue > 0.01
    statistic, pvalue = ks(np.append(reference, np.nan), reference + 1.0)
    assert statistic > 0.3 and pvalue < 1e-6
    assert all(math.isnan(v) for v in ks(np.array([np.nan]), reference))


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0, positive: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40.0, 10.0, n),
            "income": rng.lognormal(10.0, 0.5, n) * math.exp(shift),
            "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2]),
            "label": rng.choice([0, 1], n, p=[1 - positive, positive]),
        }
    )


def test_table_drift_flags_exactly_the_shifted_column() -> None:
    rng = np.random.default_rng(2)
    reference = _frame(rng, 4000)
    current = _frame(rng, 4000, shift=0.5)  # income × e^0.5: mean + 1 std of log income
    current.loc[:99, "age"] = np.nan
    report = table_drift(reference, current, ["age", "income"], ["city"], "label")
    assert report["drifted_columns"] == ["income"]
    assert report["drifted"] is True
    rows = {row["column"]: row for row in report["columns"]}
    assert rows["income"]["psi"] > 0.25 and rows["income"]["ks_pvalue"] < 1e-6
    assert rows["age"]["psi"] < 0.2 and rows["city"]["psi"] < 0.05
    assert rows["age"]["missing_current"] == pytest.approx(0.025) and rows["age"]["missing_reference"] == 0.0
    assert "ks_pvalue" not in rows["city"] and rows["city"]["kind"] == "categorical"
    assert report["max_psi"] == rows["income"]["psi"]
    assert report["label"]["drifted"] is False
    assert set(report["label"]["reference"]) == {"0", "1"}


def test_table_drift_flags_label_balance_shift() -> None:
    rng = np.random.default_rng(3)
    report = table_drift(_frame(rng, 4000), _frame(rng, 4000, positive=0.9), ["age"], ["city"], "label")
    assert report["drifted_columns"] == []
    assert report["label"]["drifted"] is True and report["drifted"] is True
    assert report["label"]["current"]["1"] == pytest.approx(0.9, abs=0.02)
    assert report["label"]["psi"] > 0.5

    quiet = table_drift(_frame(rng, 4000), _frame(rng, 4000), ["age", "income"], ["city"], None)
    assert quiet["drifted"] is False and quiet["label"] is None


def test_table_drift_missing_column_names_it() -> None:
    rng = np.random.default_rng(4)
    reference = _frame(rng, 100)
    with pytest.raises(ValueError, match="'income'"):
        table_drift(reference, reference.drop(columns=["income"]), ["age", "income"], ["city"], "label")
    with pytest.raises(ValueError, match="'label'"):
        table_drift(reference, reference.drop(columns=["label"]), ["age"], [], "label")


WORDS = [f"word{i}" for i in range(200)]


def _texts(rng: np.random.Generator, n: int, low: int, high: int, words: list[str] = WORDS) -> list[str]:
    return [" ".join(rng.choice(words, rng.integers(low, high + 1))) for _ in range(n)]


def _lower_words(text: str) -> list[str]:
    return text.lower().split()


def test_text_drift() -> None:
    rng = np.random.default_rng(5)
    vocabulary = set(WORDS[:180])  # ~10% of reference tokens are out of vocabulary
    reference = _texts(rng, 1000, 5, 15)
    same = text_drift(reference, [t.upper() for t in _texts(rng, 1000, 5, 15)], vocabulary, _lower_words)
    assert same["drifted"] is False and same["length_psi"] < 0.1
    assert same["oov_rate_reference"] == pytest.approx(0.1, abs=0.02)
    assert abs(same["oov_rise"]) < 0.02

    longer = text_drift(reference, _texts(rng, 1000, 20, 40), vocabulary, _lower_words)
    assert longer["drifted"] is True and longer["length_psi"] >= 0.2
    assert longer["mean_length_current"] > 2 * longer["mean_length_reference"]

    zzq = [f"zzq{i}" for i in range(50)]
    unknown = text_drift(reference, _texts(rng, 1000, 5, 15, zzq), vocabulary, _lower_words)
    assert unknown["drifted"] is True and unknown["length_psi"] < 0.1
    assert unknown["oov_rate_current"] == 1.0 and unknown["oov_rise"] > 0.8


def test_text_drift_reads_texts_with_the_tasks_tokenizer(tmp_path: Path) -> None:
    """Punctuation and case as the model sees them: the training texts are 0% unknown (a whitespace
    split called "movie," and "Great" unknown words)."""
    from dlops.kinds import get_kind
    from dlops.kinds.text.tokenizer import WordTokenizer
    from dlops.params import TokenizerConfig, paths

    texts = ["Great movie, loved it!", "A dull, slow film.", "Great acting; dull plot?"] * 5
    tokenizer = WordTokenizer.fit(texts, TokenizerConfig(min_freq=1, max_length=16))
    p = paths(tmp_path)
    p.processed("reviews").mkdir(parents=True)
    tokenizer.to_json(p.processed("reviews") / "tokenizer.json")
    frame = pd.DataFrame({"text": texts, "label": ["pos", "neg", "pos"] * 5})
    text_kind = get_kind("text")
    report = text_kind.drift(None, frame, frame.assign(text=frame["text"] + " zzq"), p, "reviews", 0.2)
    assert report["oov_rate_reference"] == 0.0
    assert report["mean_length_reference"] == pytest.approx(6.0)  # words and punctuation marks
    assert report["oov_rate_current"] == pytest.approx(15 / (15 * 7))  # one unknown word per text


def _images(rng: np.random.Generator, n: int, darken: float = 1.0) -> np.ndarray:
    brightness = rng.uniform(0.3, 0.8, (n, 1, 1, 1))
    pixels = np.clip(brightness + rng.normal(0.0, 0.1, (n, 3, 8, 8)), 0.0, 1.0) * darken
    return np.round(pixels * 255).astype(np.uint8)


def test_image_drift() -> None:
    rng = np.random.default_rng(6)
    reference = _images(rng, 1000)
    same = image_drift(reference, _images(rng, 1000))
    assert same["drifted"] is False and same["mean_psi"] < 0.1 and same["std_psi"] < 0.1
    assert same["blank_share_reference"] == 0.0

    dark = _images(rng, 1000, darken=0.5)
    dark[:100] = 0  # 10% blank (all-black) images
    darkened = image_drift(reference, dark)
    assert darkened["drifted"] is True and darkened["mean_psi"] > 1.0
    assert darkened["blank_share_current"] == pytest.approx(0.1)
    assert darkened["mean_brightness_current"] < 0.5 * darkened["mean_brightness_reference"] + 0.01

    # Float images in [0, 1] give the same statistics as their uint8 originals.
    as_float = image_drift(reference.astype(np.float32) / 255, dark.astype(np.float64) / 255)
    assert as_float["mean_psi"] == pytest.approx(darkened["mean_psi"], rel=1e-3)
    with pytest.raises(ValueError, match="N, C, H, W"):
        image_drift(reference[0], reference)


def test_reports_json_safe_deterministic_and_summarised() -> None:
    def reports() -> list[dict[str, Any]]:
        rng = np.random.default_rng(7)
        current = _frame(rng, 500, shift=0.5)
        current.loc[:, "age"] = np.nan  # all missing: KS is undefined and must come out as None
        return [
            table_drift(_frame(rng, 500), current, ["age", "income"], ["city"], "label"),
            text_drift(_texts(rng, 200, 5, 15), _texts(rng, 200, 5, 15) + [""], set(WORDS), _lower_words),
            image_drift(_images(rng, 200), _images(rng, 200, darken=0.5)),
        ]

    first, second = reports(), reports()
    assert [_json(r) for r in first] == [_json(r) for r in second]
    table = first[0]
    assert {row["column"]: row for row in table["columns"]}["age"]["ks_statistic"] is None
    summaries = [table_summary, text_summary, image_summary]  # each kind draws its own report
    for report, summary in zip(first, summaries, strict=True):
        markdown = summary(report)
        assert markdown.startswith(f"### {report['kind'].capitalize()} drift")
        assert markdown == summary(json.loads(_json(report)))
    assert "| income | numeric |" in table_summary(table)
    assert "| label | label |" in table_summary(table)
    with pytest.raises(ValueError, match="kind"):
        summary_markdown({"drifted": False}, [])
