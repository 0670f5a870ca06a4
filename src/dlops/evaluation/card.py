"""The model card of one registered model version, rendered from a plain dict in two forms.

- Compact Markdown, set as the MLflow model version description. It must stay within `max_chars`
  (4800 by default); when over, the least important parts go first: the figures list, then the
  per-group fairness rows beyond the first 8 per attribute, then the params (then, as a last resort,
  the passing validation rows and whole low-priority sections, never the gates or the decision), and
  the line "full card: model_card.html (artifact)" says where the rest is.
- One self-contained HTML file: no external requests (PNG figures as base64 data URIs, HTML figures
  such as token-attribution pages in a sandboxed `<iframe srcdoc>`), inline CSS only, every piece of
  text escaped with `html.escape`.

The card dict needs `title` and `decision`; every other section is optional and rendered only when
present (and non-empty): `summary`, `lineage`, `params`, `overfitting` (flat mappings), `metrics`, `gates`,
`fairness_gaps`, `importance`, `figures` (lists), `fairness` (attribute -> group rows), and
`validation`, `mitigation`, `comparison` (mappings). Numbers show at most 4 decimals (4 significant
digits below 1e-4); None shows as "—". Missing figure files are skipped with a note.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dlops.files import write_text

DEFAULT_MAX_CHARS = 4800
FULL_CARD_LINE = "full card: model_card.html (artifact)"
HTML_NAME = "model_card.html"
MARKDOWN_NAME = "model_card.md"
NONE_SHOWN = "—"
CI_HEADER = "95% CI"
FAIRNESS_ROWS_KEPT = 8
TOP_FEATURES = 10
TOO_SMALL = "too small to measure"
RAW_HTML_TAG = re.compile(r"<(?=[A-Za-z/!?])")

HEADINGS = {  # section key -> heading, in the order both forms show them
    "summary": "Summary",
    "lineage": "Lineage",
    "metrics": "Metrics",
    "gates": "Gates",
    "comparison": "Champion comparison",
    "mitigation": "Mitigation",
    "fairness_gaps": "Fairness gaps",
    "fairness": "Fairness by group",
    "overfitting": "Overfitting",
    "importance": "Feature importance",
    "validation": "Validation",
    "params": "Params",
    "decision": "Decision",
    "figures": "Figures",
}
# dropped one at a time, after figures / fairness rows / params / passing validation rows, when still over
LAST_RESORT_DROPS = (
    "importance",
    "validation",
    "overfitting",
    "fairness",
    "lineage",
    "summary",
    "mitigation",
    "fairness_gaps",
    "comparison",
    "metrics",
)
COLUMN_LABELS = {
    "tpr": "TPR",
    "fpr": "FPR",
    "ci_low": CI_HEADER,
    "success": "result",
    "name": "metric",
}
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
HTML_SUFFIXES = (".html", ".htm")
VERDICT_COLOURS = {"promoted": "#1a7f37", "kept": "#0969da", "rejected": "#cf222e", "rolled back": "#bc4c00"}
NEUTRAL_COLOUR = "#57606a"
# no fetches, except the data: images this file carries; srcdoc frames inherit the policy (frame-src is
# left unset so that the srcdoc frames themselves are never blocked)
CONTENT_SECURITY_POLICY = (
    "img-src data:; style-src 'unsafe-inline'; script-src 'none'; connect-src 'none'; font-src 'none'; "
    "media-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
)
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { margin-bottom: 0.3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
.badge { display: inline-block; color: #fff; border-radius: 0.4rem; padding: 0.15rem 0.6rem;
         font-weight: 600; }
.verdict { font-size: 1.1rem; }
.note { color: #57606a; font-style: italic; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figure iframe { width: 100%; height: 480px; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9rem; }
"""


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Subheading:
    text: str


@dataclass(frozen=True)
class Figures:
    paths: tuple[Path, ...]


Block = Table | Text | Bullets | Subheading | Figures


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Compaction:
    """What the Markdown leaves out to fit; the default leaves out nothing (the HTML always uses it)."""

    dropped: frozenset[str] = frozenset()
    fairness_rows: int | None = None
    validation_failures_only: bool = False


SectionBuilder = Callable[[Any, Compaction], list[Block]]


# ---------------------------------------------------------------- public API


def render_markdown(card: Mapping[str, Any], max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The compact Markdown card, at most `max_chars` characters long."""
    _require_title_and_decision(card)
    text = ""
    for step, compaction in enumerate(_compactions()):
        text = _markdown_document(card, _build_sections(card, compaction), compacted=step > 0)
        if len(text) <= max_chars:
            return text
    return _truncate_markdown(text, max_chars)


def render_html(card: Mapping[str, Any]) -> str:
    """The full card as one self-contained HTML page."""
    _require_title_and_decision(card)
    title = html.escape(str(card["title"]))
    body = "\n".join(_html_section(section) for section in _build_sections(card, Compaction()))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header>\n<h1>{title}</h1>\n{_html_verdict_line(card['decision'])}\n</header>\n"
        f"{body}\n</body>\n</html>\n"
    )


def write_card(
    card: Mapping[str, Any], out_dir: Path, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[Path, str]:
    """Write `out_dir/model_card.html` and `out_dir/model_card.md` atomically; (html path, markdown)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(card, max_chars)
    html_path = out_dir / HTML_NAME
    write_text(html_path, render_html(card))
    write_text(out_dir / MARKDOWN_NAME, markdown)
    return html_path, markdown


# ---------------------------------------------------------------- formatting


def format_value(value: Any) -> str:
    """None -> "—"; numbers with at most 4 decimals (4 significant digits when tiny); anything else str."""
    if value is None:
        return NONE_SHOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _format_float(float(value))
    return str(value)


def _format_float(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if 1e-4 <= abs(value) < 1e15:
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return f"{value:.4g}"


def _format_interval(row: Mapping[str, Any]) -> str:
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None and high is None:
        return NONE_SHOWN
    return f"[{format_value(low)}, {format_value(high)}]"


def _pass_mark(passed: Any) -> str:
    if passed is None:
        return NONE_SHOWN
    return "✅ pass" if passed else "❌ fail"


def _column_label(key: str) -> str:
    return COLUMN_LABELS.get(key, key.replace("_", " "))


def _cell(key: str, row: Mapping[str, Any]) -> str:
    if key == "ci_low":
        return _format_interval(row)
    if key in ("success", "passed"):
        return _pass_mark(row.get(key))
    if key == "proxy":
        return "⚠ proxy" if row.get(key) else ""
    return format_value(row.get(key))


# ---------------------------------------------------------------- sections (shared by both forms)


def _require_title_and_decision(card: Mapping[str, Any]) -> None:
    missing = [key for key in ("title", "decision") if not card.get(key)]
    if missing:
        raise ValueError(f"model card needs {' and '.join(missing)}")
    if not isinstance(card["decision"], Mapping):
        raise ValueError("model card decision must be a mapping with a verdict and reasons")


def _compactions() -> Iterator[Compaction]:
    """The Markdown's ever smaller variants: full, then dropping parts least important first."""
    step = Compaction()
    yield step
    step = replace(step, dropped=frozenset({"figures"}))
    yield step
    step = replace(step, fairness_rows=FAIRNESS_ROWS_KEPT)
    yield step
    step = replace(step, dropped=step.dropped | {"params"})
    yield step
    step = replace(step, validation_failures_only=True)
    yield step
    for key in LAST_RESORT_DROPS:
        step = replace(step, dropped=step.dropped | {key})
        yield step


def _build_sections(card: Mapping[str, Any], compaction: Compaction) -> list[Section]:
    builders: dict[str, SectionBuilder] = {
        "summary": _key_value_blocks,
        "lineage": _key_value_blocks,
        "metrics": _metric_blocks,
        "gates": _gate_blocks,
        "comparison": _key_value_blocks,
        "mitigation": _mitigation_blocks,
        "fairness_gaps": _fairness_gap_blocks,
        "fairness": _fairness_group_blocks,
        "overfitting": _key_value_blocks,
        "importance": _importance_blocks,
        "validation": _validation_blocks,
        "params": _key_value_blocks,
        "decision": _decision_blocks,
        "figures": _figure_blocks,
    }
    sections = []
    for key, heading in HEADINGS.items():
        value = card.get(key)
        if not value or key in compaction.dropped:
            continue
        sections.append(Section(key, heading, tuple(builders[key](value, compaction))))
    return sections


def _key_value_blocks(pairs: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    return [_key_value_table(pairs)] if pairs else []


def _key_value_table(pairs: Mapping[str, Any]) -> Table:
    """Two columns; a ci_low/ci_high pair becomes one "95% CI" row."""
    rows: list[tuple[str, str]] = []
    for key, value in pairs.items():
        if key == "ci_high" and "ci_low" in pairs:
            continue
        if key in ("ci_low", "ci_high"):
            rows.append((CI_HEADER, _format_interval(pairs)))
        else:
            rows.append((str(key), format_value(value)))
    return Table(("field", "value"), tuple(rows))


def _records_table(records: Sequence[Mapping[str, Any]], leading: Sequence[str]) -> Table:
    """One row per record; the `leading` columns first, then every other key in order of appearance."""
    columns = [key for key in leading if any(key in record for record in records)]
    for record in records:
        columns.extend(str(key) for key in record if key not in columns)
    columns = [key for key in columns if not (key == "ci_high" and "ci_low" in columns)]
    rows = tuple(tuple(_cell(key, record) for key in columns) for record in records)
    return Table(tuple(_column_label(key) for key in columns), rows)


def _metric_blocks(metrics: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    return [_records_table(metrics, ("name", "value", "ci_low"))] if metrics else []


def _gate_blocks(gates: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    rows = tuple(
        (
            str(gate.get("name", NONE_SHOWN)),
            format_value(gate.get("value")),
            _gate_limit(gate),
            _pass_mark(gate.get("passed")),
        )
        for gate in gates
    )
    return [Table(("gate", "value", "limit", "verdict"), rows)] if rows else []


def _gate_limit(gate: Mapping[str, Any]) -> str:
    limit = format_value(gate.get("limit"))
    return f"{gate['op']} {limit}" if gate.get("op") else limit


def _mitigation_blocks(mitigation: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    setup = {key: value for key, value in mitigation.items() if key not in ("rows", "accuracy_cost")}
    blocks: list[Block] = []
    if setup:
        blocks.append(Text("; ".join(f"{key}: {format_value(value)}" for key, value in setup.items())))
    if mitigation.get("rows"):
        blocks.append(_records_table(mitigation["rows"], ("variant",)))
    if "accuracy_cost" in mitigation:
        blocks.append(Text(f"accuracy cost: {format_value(mitigation['accuracy_cost'])}"))
    return blocks


def _fairness_gap_blocks(gaps: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    return [_records_table(gaps, ("attribute", "metric", "value", "ci_low"))] if gaps else []


def _fairness_group_blocks(
    fairness: Mapping[str, Sequence[Mapping[str, Any]]], compaction: Compaction
) -> list[Block]:
    blocks: list[Block] = []
    for attribute, groups in fairness.items():
        shown = list(groups) if compaction.fairness_rows is None else list(groups)[: compaction.fairness_rows]
        blocks += [Subheading(str(attribute)), _group_table(shown)]
        hidden = len(groups) - len(shown)
        if hidden:
            blocks.append(Text(f"… {hidden} more groups in the full card"))
    return blocks


def _group_table(groups: Sequence[Mapping[str, Any]]) -> Table:
    """Per-group rates; a group flagged measurable=false shows "too small to measure" for its rates."""
    columns = ["group", "count"]
    for group in groups:
        columns.extend(str(key) for key in group if key not in columns and key != "measurable")
    rows = []
    for group in groups:
        cells = [_cell(key, group) for key in columns]
        if group.get("measurable") is False and len(cells) > 2:
            cells[2:] = [TOO_SMALL] + [NONE_SHOWN] * (len(cells) - 3)
        rows.append(tuple(cells))
    return Table(tuple(_column_label(key) for key in columns), tuple(rows))


def _importance_blocks(importance: Sequence[Mapping[str, Any]], compaction: Compaction) -> list[Block]:
    ranked = sorted(importance, key=_importance_rank)
    top = ranked[:TOP_FEATURES]
    rows = tuple(
        (
            str(row.get("feature", NONE_SHOWN)),
            format_value(row.get("importance_mean")),
            format_value(row.get("importance_std")),
            _cell("proxy", row),
        )
        for row in top
    )
    blocks: list[Block] = [Table(("feature", "importance", "std", "proxy"), rows)] if rows else []
    if len(ranked) > len(top):
        blocks.append(Text(f"top {len(top)} of {len(ranked)} features"))
    return blocks


def _importance_rank(row: Mapping[str, Any]) -> float:
    mean = row.get("importance_mean")
    if isinstance(mean, numbers.Real) and math.isfinite(float(mean)):
        return -float(mean)
    return math.inf


def _validation_blocks(validation: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    overview = {key: value for key, value in validation.items() if key != "rows"}
    blocks: list[Block] = [_key_value_table(overview)] if overview else []
    rows = list(validation.get("rows") or [])
    if compaction.validation_failures_only:
        failures = [row for row in rows if not row.get("success")]
        if len(failures) < len(rows):
            blocks.append(Text(f"{len(rows) - len(failures)} passing expectations in the full card"))
        rows = failures
    if rows:
        blocks.append(_records_table(rows, ("expectation", "column", "severity", "success")))
    return blocks


def _decision_blocks(decision: Mapping[str, Any], compaction: Compaction) -> list[Block]:
    facts = {key: value for key, value in decision.items() if key != "reasons"}
    blocks: list[Block] = [_key_value_table(facts)] if facts else []
    reasons = tuple(str(reason) for reason in decision.get("reasons") or ())
    if reasons:
        blocks.append(Bullets(reasons))
    return blocks


def _figure_blocks(figures: Iterable[Path | str], compaction: Compaction) -> list[Block]:
    paths = tuple(Path(figure) for figure in figures)
    return [Figures(paths)] if paths else []


def _verdict_and_first_reason(decision: Mapping[str, Any]) -> tuple[str, str | None]:
    reasons = list(decision.get("reasons") or ())
    return format_value(decision.get("verdict")), (str(reasons[0]) if reasons else None)


# ---------------------------------------------------------------- Markdown


def _markdown_document(card: Mapping[str, Any], sections: Sequence[Section], compacted: bool) -> str:
    parts = [f"# {_markdown_text(str(card['title']))}", _markdown_verdict_line(card["decision"])]
    for section in sections:
        parts.append(f"## {section.heading}")
        parts.extend(_markdown_block(block) for block in section.blocks)
    if compacted:
        parts.append(FULL_CARD_LINE)
    return "\n\n".join(parts) + "\n"


def _markdown_verdict_line(decision: Mapping[str, Any]) -> str:
    verdict, first_reason = _verdict_and_first_reason(decision)
    line = f"**Decision: {_markdown_text(verdict)}**"
    return f"{line} — {_markdown_text(first_reason)}" if first_reason else line


def _markdown_text(text: str) -> str:
    """One line, with no raw HTML tags (MLflow renders the description); "<= 0.1" stays as it is."""
    return RAW_HTML_TAG.sub("&lt;", " ".join(text.split()))


def _markdown_cell(text: str) -> str:
    return _markdown_text(text).replace("|", "\\|")


def _markdown_block(block: Block) -> str:
    if isinstance(block, Table):
        lines = [_markdown_row(block.header), "|" + "---|" * len(block.header)]
        lines += [_markdown_row(row) for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Bullets):
        return "\n".join(f"- {_markdown_text(item)}" for item in block.items)
    if isinstance(block, Subheading):
        return f"### {_markdown_text(block.text)}"
    if isinstance(block, Figures):
        return "\n".join(f"- {_markdown_text(_figure_label(path))}" for path in block.paths)
    return _markdown_text(block.text)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_markdown_cell(text) for text in cells) + " |"


def _figure_label(path: Path) -> str:
    return path.name if path.is_file() else f"{path.name} (missing)"


def _truncate_markdown(text: str, max_chars: int) -> str:
    """Last resort when even the smallest variant is over: cut at a line and point to the full card."""
    tail = f"\n\n…\n\n{FULL_CARD_LINE}\n"
    if len(tail) >= max_chars:
        return text[:max_chars]
    kept = text[: max_chars - len(tail)]
    if "\n" in kept:
        kept = kept[: kept.rindex("\n")]
    return kept.rstrip() + tail


# ---------------------------------------------------------------- HTML


def _html_verdict_line(decision: Mapping[str, Any]) -> str:
    verdict, first_reason = _verdict_and_first_reason(decision)
    colour = VERDICT_COLOURS.get(verdict.lower(), NEUTRAL_COLOUR)
    badge = f'<span class="badge" style="background: {colour}">Decision: {html.escape(verdict)}</span>'
    reason = f" — {html.escape(first_reason)}" if first_reason else ""
    return f'<p class="verdict">{badge}{reason}</p>'


def _html_section(section: Section) -> str:
    blocks = "\n".join(_html_block(block) for block in section.blocks)
    return f'<section id="{section.key}">\n<h2>{html.escape(section.heading)}</h2>\n{blocks}\n</section>'


def _html_block(block: Block) -> str:
    if isinstance(block, Table):
        header = "".join(f"<th>{html.escape(text)}</th>" for text in block.header)
        rows = "\n".join(
            "<tr>" + "".join(f"<td>{html.escape(text)}</td>" for text in row) + "</tr>" for row in block.rows
        )
        return f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    if isinstance(block, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Subheading):
        return f"<h3>{html.escape(block.text)}</h3>"
    if isinstance(block, Figures):
        return "\n".join(_html_figure(path) for path in block.paths)
    return f"<p>{html.escape(block.text)}</p>"


def _html_figure(path: Path) -> str:
    """PNG (and other images) as a data URI, HTML pages in a sandboxed iframe srcdoc; else a note."""
    name = html.escape(path.name)
    if not path.is_file():
        return f'<p class="note">figure missing: {name}</p>'
    suffix = path.suffix.lower()
    try:
        if suffix in IMAGE_TYPES:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            content = f'<img alt="{name}" src="data:{IMAGE_TYPES[suffix]};base64,{data}">'
        elif suffix in HTML_SUFFIXES:
            page = html.escape(path.read_text(encoding="utf-8", errors="replace"), quote=True)
            content = f'<iframe sandbox="" title="{name}" srcdoc="{page}"></iframe>'
        else:
            return f'<p class="note">figure not embedded (unsupported type): {name}</p>'
    except OSError as error:
        return f'<p class="note">figure unreadable: {name} ({html.escape(error.strerror or "error")})</p>'
    return f"<figure>\n{content}\n<figcaption>{name}</figcaption>\n</figure>"


# ---------------------------------------------------------------- files
