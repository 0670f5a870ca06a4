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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlops.evaluation.card_sections import (
    Block,
    Bullets,
    Compaction,
    Figures,
    Section,
    Subheading,
    Table,
    build_sections,
    compactions,
    require_title_and_decision,
    verdict_and_first_reason,
)
from dlops.files import write_text

DEFAULT_MAX_CHARS = 4800
FULL_CARD_LINE = "full card: model_card.html (artifact)"
HTML_NAME = "model_card.html"
MARKDOWN_NAME = "model_card.md"
RAW_HTML_TAG = re.compile(r"<(?=[A-Za-z/!?])")

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


# ---------------------------------------------------------------- public API


def render_markdown(card: Mapping[str, Any], max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The compact Markdown card, at most `max_chars` characters long."""
    require_title_and_decision(card)
    text = ""
    for step, compaction in enumerate(compactions()):
        text = _markdown_document(card, build_sections(card, compaction), compacted=step > 0)
        if len(text) <= max_chars:
            return text
    return _truncate_markdown(text, max_chars)


def render_html(card: Mapping[str, Any]) -> str:
    """The full card as one self-contained HTML page."""
    require_title_and_decision(card)
    title = html.escape(str(card["title"]))
    body = "\n".join(_html_section(section) for section in build_sections(card, Compaction()))
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
    verdict, first_reason = verdict_and_first_reason(decision)
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
    verdict, first_reason = verdict_and_first_reason(decision)
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
