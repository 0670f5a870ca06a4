"""Model card rendering: section order, gates, compaction to the description limit, self-contained HTML."""

from __future__ import annotations

import base64
import html
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from dlops.evaluation.card import (
    FULL_CARD_LINE,
    render_html,
    render_markdown,
    write_card,
)
from dlops.evaluation.card_sections import format_value

HEADINGS = [
    "Summary",
    "Lineage",
    "Metrics",
    "Gates",
    "Champion comparison",
    "Mitigation",
    "Fairness gaps",
    "Fairness by group",
    "Overfitting",
    "Privacy",
    "Feature importance",
    "Validation",
    "Params",
    "Decision",
    "Figures",
]
TOKEN_PAGE = '<!DOCTYPE html><html><body><p class="tok">great &amp; "fun" <b>plot</b></p></body></html>'
EXTERNAL_LINK = re.compile(r"""(?:src|href)\s*=\s*["']?\s*https?://""", re.IGNORECASE)


def _tiny_png() -> bytes:
    """A valid 1x1 RGB PNG, built from raw bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _groups(count: int, measurable: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "group": f"g{i}",
            "count": 100 + i,
            "selection_rate": 0.2,
            "tpr": 0.6,
            "fpr": 0.05,
            "accuracy": 0.87,
            "measurable": measurable,
        }
        for i in range(count)
    ]


PRIVACY: dict[str, Any] = {
    "membership": [
        {
            "attack": "loss threshold",
            "auc": 0.512,
            "ci_low": 0.503,
            "ci_high": 0.521,
            "tpr_at_1pct_fpr": 0.011,
        },
        {
            "attack": "modified entropy",
            "auc": 0.509,
            "ci_low": None,
            "ci_high": None,
            "tpr_at_1pct_fpr": 0.01,
        },
    ],
    "membership_pairs": 10000,
    "pii": [],
    "pii_screened_columns": 9,
    "identifiers": {"customer_id": "pseudonymised", "email": "dropped"},
}


def _card(figures: list[Path] | None = None) -> dict[str, Any]:
    return {
        "title": "dlops-tabular-mlp v3",
        "summary": {
            "model": "tabular-mlp",
            "family": "mlp",
            "task": "tabular",
            "version": "3",
            "run_id": "r1",
        },
        "lineage": {"git.commit": "abc123", "git.dirty": "false", "data.version": "d41d8cd9"},
        "validation": {
            "suite": "expectations/tabular.json",
            "evaluated": 40,
            "failed_critical": 0,
            "failed_warning": 1,
            "rows": [
                {"expectation": "not_null", "column": "age", "severity": "critical", "success": True},
                {"expectation": "in_range", "column": "hours", "severity": "warning", "success": False},
            ],
        },
        "params": {"train.lr": "0.003", "train.epochs": "20"},
        "metrics": [
            {"name": "test/balanced_accuracy", "value": 0.837, "ci_low": 0.82, "ci_high": 0.85},
            {"name": "test/accuracy", "value": 0.8612345},
        ],
        "mitigation": {
            "method": "threshold_optimizer",
            "constraint": "demographic_parity",
            "rows": [
                {"variant": "unmitigated", "accuracy": 0.86, "demographic_parity_difference": 0.22},
                {"variant": "mitigated", "accuracy": 0.842, "demographic_parity_difference": 0.03},
            ],
            "accuracy_cost": 0.018,
        },
        "fairness": {
            "sex": [
                {
                    "group": "Female",
                    "count": 1300,
                    "selection_rate": 0.2,
                    "tpr": 0.6,
                    "fpr": 0.05,
                    "accuracy": 0.87,
                    "measurable": True,
                },
                {
                    "group": "Other",
                    "count": 4,
                    "selection_rate": 0.5,
                    "tpr": None,
                    "fpr": None,
                    "accuracy": 0.5,
                    "measurable": False,
                },
            ],
        },  # fmt: skip
        "fairness_gaps": [
            {
                "attribute": "sex",
                "metric": "demographic_parity_difference",
                "value": 0.02,
                "ci_low": 0.0,
                "ci_high": 0.05,
            },
        ],  # fmt: skip
        "overfitting": {"diagnosis": "good fit", "primary_gap_train_test": 0.01},
        "privacy": PRIVACY,
        "importance": [
            {"feature": f"f{i}", "importance_mean": i / 100, "importance_std": 0.001, "proxy": i == 11}
            for i in range(12)
        ],
        "gates": [
            {
                "name": "min_balanced_accuracy",
                "metric": "test/balanced_accuracy",
                "value": 0.837,
                "limit": 0.8,
                "op": ">=",
                "passed": True,
            },
            {
                "name": "max_demographic_parity_difference",
                "metric": "fairness/max/dpd",
                "value": 0.22,
                "limit": 0.1,
                "op": "<=",
                "passed": False,
            },
        ],  # fmt: skip
        "comparison": {
            "method": "paired_bootstrap",
            "metric": "test/balanced_accuracy",
            "candidate": 0.84,
            "champion": 0.83,
            "difference": 0.01,
            "ci_low": -0.005,
            "ci_high": 0.02,
            "verdict": "indistinguishable",
        },
        "decision": {
            "verdict": "rejected",
            "reasons": ["gate max_demographic_parity_difference failed", "not better than the champion"],
            "by": "pipeline",
            "champion_before": "2",
        },
        "figures": figures or [],
    }


@pytest.fixture()
def figures(tmp_path: Path) -> list[Path]:
    png = tmp_path / "roc.png"
    png.write_bytes(_tiny_png())
    page = tmp_path / "token_attributions.html"
    page.write_text(TOKEN_PAGE, encoding="utf-8")
    return [png, page, tmp_path / "gone.png"]


def _positions(text: str, markers: list[str]) -> list[int]:
    positions = [text.find(marker) for marker in markers]
    assert -1 not in positions, [m for m, p in zip(markers, positions, strict=True) if p == -1]
    return positions


def test_full_card_renders_every_section_in_order_in_both_forms(figures: list[Path]) -> None:
    card = _card(figures)
    markdown = render_markdown(card, max_chars=100_000)
    page = render_html(card)

    lines = markdown.splitlines()
    assert lines[0] == "# dlops-tabular-mlp v3"
    assert lines[2] == "**Decision: rejected** — gate max_demographic_parity_difference failed"
    md_positions = _positions(markdown, [f"\n## {heading}\n" for heading in HEADINGS])
    assert md_positions == sorted(md_positions)
    assert FULL_CARD_LINE not in markdown

    html_positions = _positions(page, [f"<h2>{heading}</h2>" for heading in HEADINGS])
    assert html_positions == sorted(html_positions)
    assert page.index("Decision: rejected</span>") < html_positions[0]
    assert "<h1>dlops-tabular-mlp v3</h1>" in page


def test_only_present_sections_are_rendered() -> None:
    card = {"title": "m v1", "decision": {"verdict": "promoted", "reasons": ["first model"]}}
    markdown = render_markdown(card)
    assert re.findall(r"^## (.+)$", markdown, re.M) == ["Decision"]
    assert "**Decision: promoted** — first model" in markdown
    assert re.findall(r"<h2>(.+?)</h2>", render_html(card)) == ["Decision"]
    assert "background: #1a7f37" in render_html(card)  # green badge for promoted


def test_title_and_decision_are_required() -> None:
    with pytest.raises(ValueError, match="decision"):
        render_markdown({"title": "m v1"})
    with pytest.raises(ValueError, match="title"):
        render_html({"decision": {"verdict": "kept"}})


def test_numbers_are_formatted_with_at_most_four_decimals() -> None:
    assert format_value(0.8612345) == "0.8612"
    assert format_value(0.837) == "0.837"
    assert format_value(2.0) == "2"
    assert format_value(-0.00001) == "-1e-05"
    assert format_value(1300) == "1300"
    assert format_value(None) == "—"
    assert format_value(True) == "true"
    assert format_value("0.003") == "0.003"


def test_metric_table_has_confidence_interval_column() -> None:
    markdown = render_markdown(_card())
    assert "| metric | value | 95% CI |" in markdown
    assert "| test/balanced_accuracy | 0.837 | [0.82, 0.85] |" in markdown
    assert "| test/accuracy | 0.8612 | — |" in markdown
    assert "| 95% CI | [-0.005, 0.02] |" in markdown  # champion comparison


def test_failing_gate_shows_cross_with_value_and_limit() -> None:
    card = _card()
    markdown = render_markdown(card)
    assert "| gate | value | limit | verdict |" in markdown
    assert "| max_demographic_parity_difference | 0.22 | <= 0.1 | ❌ fail |" in markdown
    assert "| min_balanced_accuracy | 0.837 | >= 0.8 | ✅ pass |" in markdown
    page = render_html(card)
    assert (
        "<tr><td>max_demographic_parity_difference</td><td>0.22</td><td>&lt;= 0.1</td><td>❌ fail</td></tr>"
        in page
    )
    assert "background: #cf222e" in page  # red badge for rejected


def test_fairness_mitigation_importance_and_validation_tables() -> None:
    markdown = render_markdown(_card())
    assert "### sex" in markdown
    assert "| group | count | selection rate | TPR | FPR | accuracy |" in markdown
    assert "| Female | 1300 | 0.2 | 0.6 | 0.05 | 0.87 |" in markdown
    assert "| Other | 4 | too small to measure | — | — | — |" in markdown
    assert "| unmitigated | 0.86 | 0.22 |" in markdown
    assert "accuracy cost: 0.018" in markdown
    assert "| sex | demographic_parity_difference | 0.02 | [0, 0.05] |" in markdown
    importance = markdown.split("## Feature importance")[1].split("## Validation")[0]
    assert importance.index("| f11 | 0.11 | 0.001 | ⚠ proxy |") < importance.index("| f10 | 0.1 |")
    assert "| f1 |" not in importance and "| f0 |" not in importance
    assert "top 10 of 12 features" in importance
    assert "| in_range | hours | warning | ❌ fail |" in markdown
    decision = markdown.split("## Decision")[1]
    assert "- gate max_demographic_parity_difference failed\n- not better than the champion" in decision
    assert "| champion_before | 2 |" in decision


def test_markdown_with_huge_tables_stays_under_the_limit() -> None:
    card = _card()
    card["fairness"] = {"sex": _groups(60), "race": _groups(60), "sex&race": _groups(200)}
    card["params"] = {f"train.param_{i}": f"value-{i}" for i in range(300)}
    markdown = render_markdown(card, max_chars=4800)

    assert len(markdown) <= 4800
    assert "## Gates" in markdown and "## Decision" in markdown
    assert "| max_demographic_parity_difference | 0.22 | <= 0.1 | ❌ fail |" in markdown
    assert markdown.rstrip().endswith(FULL_CARD_LINE)
    assert "## Params" not in markdown and "## Figures" not in markdown
    assert "| g7 |" in markdown and "| g8 |" not in markdown
    assert "… 52 more groups in the full card" in markdown
    assert "… 192 more groups in the full card" in markdown


def test_figures_are_dropped_before_anything_else(figures: list[Path]) -> None:
    card = _card(figures)
    full = render_markdown(card, max_chars=100_000)
    compact = render_markdown(card, max_chars=len(full) - 1)
    assert len(compact) < len(full)
    assert "## Figures" not in compact
    assert "## Params" in compact and "| Other | 4 |" in compact
    assert FULL_CARD_LINE in compact


def test_tiny_limit_still_holds() -> None:
    markdown = render_markdown(_card(), max_chars=300)
    assert len(markdown) <= 300
    assert markdown.startswith("# dlops-tabular-mlp v3\n\n**Decision: rejected**")
    assert FULL_CARD_LINE in markdown


def test_html_embeds_png_as_data_uri_and_makes_no_external_requests(figures: list[Path]) -> None:
    page = render_html(_card(figures))
    encoded = base64.b64encode(_tiny_png()).decode("ascii")
    assert f'src="data:image/png;base64,{encoded}"' in page
    assert not EXTERNAL_LINK.search(page)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page


def test_html_figure_is_embedded_escaped_in_srcdoc(figures: list[Path]) -> None:
    page = render_html(_card(figures))
    assert f'srcdoc="{html.escape(TOKEN_PAGE, quote=True)}"' in page
    assert TOKEN_PAGE not in page
    assert '<iframe sandbox="" title="token_attributions.html"' in page


def test_script_in_a_reason_is_escaped() -> None:
    card = _card()
    card["decision"]["reasons"] = ["<script>alert('x')</script> & more"]
    page = render_html(card)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "<script" not in render_markdown(card)


def test_missing_figure_is_skipped_with_a_note(figures: list[Path]) -> None:
    card = _card(figures)
    page = render_html(card)
    assert '<p class="note">figure missing: gone.png</p>' in page
    assert page.count("<figure>") == 2
    markdown = render_markdown(card, max_chars=100_000)
    assert "- roc.png\n- token_attributions.html\n- gone.png (missing)" in markdown


def test_write_card_writes_both_files_atomically(tmp_path: Path, figures: list[Path]) -> None:
    out_dir = tmp_path / "card"
    card = _card(figures)
    html_path, markdown = write_card(card, out_dir)
    html_path, markdown = write_card(card, out_dir)  # overwriting works too

    assert html_path == out_dir / "model_card.html"
    assert sorted(path.name for path in out_dir.iterdir()) == ["model_card.html", "model_card.md"]
    assert html_path.read_text(encoding="utf-8") == render_html(card)
    assert (out_dir / "model_card.md").read_text(encoding="utf-8") == markdown == render_markdown(card)


def test_privacy_section_without_dp_shows_the_audit_screen_and_identifiers() -> None:
    markdown = render_markdown(_card(), max_chars=100_000)
    privacy = markdown.split("## Privacy")[1].split("## Feature importance")[0]
    assert "not trained with differential privacy" in privacy
    assert "| membership attack | AUC | 95% CI | TPR at 1% FPR |" in privacy
    assert "| loss threshold | 0.512 | [0.503, 0.521] | 0.011 |" in privacy
    assert "| modified entropy | 0.509 | — | 0.01 |" in privacy
    assert "10000 training rows against as many test rows" in privacy
    assert "PII screen: no direct identifiers found in 9 screened columns" in privacy
    assert "identifiers: customer_id pseudonymised; email dropped" in privacy


def test_privacy_section_with_dp_and_pii_findings() -> None:
    card = _card()
    card["privacy"] = {
        "differential_privacy": {
            "epsilon": 2.5,
            "delta": 1e-5,
            "noise_multiplier": 1.1,
            "max_grad_norm": 1.0,
        },
        "pii": [{"column": "notes", "kind": "email", "rows": 12, "share": 0.0123}],
        "pii_screened_columns": 4,
        "memorization_ratio": 0.97,
    }
    markdown = render_markdown(card, max_chars=100_000)
    assert "ε = 2.5 at δ = 1e-05 (DP-SGD, noise σ = 1.1, clip C = 1)" in markdown
    assert "PII screen: direct identifiers found in 4 screened columns (values masked)" in markdown
    assert "- notes: email in 12 rows (1.2%)" in markdown
    assert "memorisation ratio of samples: 0.97" in markdown
    assert "membership attack" not in markdown
    assert "<h2>Privacy</h2>" in render_html(card)


def test_privacy_section_is_dropped_after_fairness_rows_but_before_the_gates() -> None:
    from dlops.evaluation.card_sections import compactions

    first = next(step for step in compactions() if "privacy" in step.dropped)
    assert {"figures", "params"} <= first.dropped  # and the per-group rows cut to the last few
    assert not first.dropped & {"importance", "gates", "metrics", "lineage", "summary", "decision"}
    card = _card()
    card["params"] = {f"train.param_{i}": f"value-{i}" for i in range(300)}
    assert "## Privacy" in render_markdown(card, max_chars=4800)  # params go first


def test_model_card_gathers_privacy_from_metrics_and_the_validation_summary() -> None:
    from dlops.model_card import _privacy

    scores = {
        "privacy/membership_auc": 0.52,
        "privacy/membership_auc/ci_low": 0.51, "privacy/membership_auc/ci_high": 0.53,
        "privacy/membership_tpr_at_1pct_fpr": 0.012, "privacy/membership_mentr_auc": 0.515,
        "privacy/membership_mentr_tpr_at_1pct_fpr": 0.011, "privacy/membership_pairs": 5000,
    }  # fmt: skip
    summary = {
        "results": [
            {"expectation": "pii_screen", "column": "a", "success": True},
            {"expectation": "pii_screen", "column": "b", "success": False},
            {"expectation": "pii_screen", "column": "b", "success": False},
            {"expectation": "not_null", "column": "c", "success": True},
        ],
        "pii": [{"column": "b", "kind": "phone", "rows": 3, "share": 0.001}],
        "identifiers": {"id": "dropped"},
    }
    found = _privacy(scores, summary)
    assert "differential_privacy" not in found
    assert found["membership"][0] == {
        "attack": "loss threshold", "auc": 0.52, "ci_low": 0.51, "ci_high": 0.53, "tpr_at_1pct_fpr": 0.012
    }  # fmt: skip
    assert found["membership"][1]["auc"] == 0.515 and found["membership"][1]["ci_low"] is None
    assert found["membership_pairs"] == 5000
    assert found["pii_screened_columns"] == 2 and found["identifiers"] == {"id": "dropped"}
    assert _privacy({"privacy/epsilon": 3.0}, {"pii": None})["differential_privacy"]["epsilon"] == 3.0
    assert _privacy({}, {}) == {}
