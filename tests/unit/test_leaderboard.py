"""The leaderboard's rows from metrics.json files: privacy columns (membership AUC; ε blank without DP)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from dlops import leaderboard


def _entry(task: str, family: str) -> SimpleNamespace:
    return SimpleNamespace(task=task, family=family, gates=SimpleNamespace(primary_metric="accuracy"))


def test_rows_carry_membership_auc_and_epsilon_blank_when_absent(tmp_path: Path) -> None:
    scores = {
        "plain": {"test/accuracy": 0.8, "privacy/membership_auc": 0.512},
        "private": {"test/accuracy": 0.78, "privacy/membership_auc": 0.501, "privacy/epsilon": 3.2},
        "gan": {"test/sample_accuracy": 0.9},
    }
    for pair, metrics in scores.items():
        (tmp_path / pair).mkdir()
        (tmp_path / pair / "metrics.json").write_text(json.dumps(metrics))
    params = SimpleNamespace(
        models={"plain": _entry("t", "mlp"), "private": _entry("t", "mlp"), "gan": _entry("i", "gan")}
    )
    table = {row["model"]: row for row in leaderboard.rows(params, lambda pair: tmp_path / pair, {})}
    assert (table["plain"]["membership_auc"], table["plain"]["epsilon"]) == (0.512, None)
    assert (table["private"]["membership_auc"], table["private"]["epsilon"]) == (0.501, 3.2)
    assert table["gan"]["membership_auc"] is None
    text = leaderboard.markdown(list(table.values()))
    header = text.splitlines()[0]
    assert "| membership_auc | epsilon |" in header
    assert "| 0.5120 | — |" in text and "| 0.5010 | 3.2000 |" in text
