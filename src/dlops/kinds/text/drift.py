"""Drift of a batch of texts against the reference: PSI of the token count per text and the
out-of-vocabulary rate (share of tokens the model reads as unknown), both with the task's own
tokenizer (its splitting and case), so the training texts' words are never counted unknown; a rise of
more than `OOV_RISE` (0.1 absolute) in OOV rate counts as drift."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from dlops.evaluation.report import clean
from dlops.monitoring.drift import PSI_THRESHOLD, cell, psi, summary_markdown, table

OOV_RISE = 0.1  # absolute rise in out-of-vocabulary rate called drift


def _oov_rate(token_lists: list[list[str]], vocabulary: set[str]) -> float:
    total = sum(len(tokens) for tokens in token_lists)
    unknown = sum(token not in vocabulary for tokens in token_lists for token in tokens)
    return unknown / total if total else float("nan")


def text_drift(
    reference_texts: Iterable[str],
    current_texts: Iterable[str],
    vocabulary: set[str],
    tokenize: Callable[[str], list[str]],
    threshold: float = PSI_THRESHOLD,
) -> dict[str, Any]:
    """Token-length PSI and out-of-vocabulary rates of two batches of texts, split by `tokenize` (the
    task's tokenizer) and looked up in `vocabulary` as it returns them."""
    ref_tokens = [tokenize(t) for t in reference_texts]
    cur_tokens = [tokenize(t) for t in current_texts]
    ref_lengths = np.array([len(t) for t in ref_tokens], dtype=float)
    cur_lengths = np.array([len(t) for t in cur_tokens], dtype=float)
    length_psi = psi(ref_lengths, cur_lengths)
    oov_ref, oov_cur = _oov_rate(ref_tokens, vocabulary), _oov_rate(cur_tokens, vocabulary)
    oov_rise = oov_cur - oov_ref  # NaN when a batch has no tokens: never drift on its own
    return {
        "kind": "text",
        "n_reference": len(ref_tokens),
        "n_current": len(cur_tokens),
        "threshold": clean(threshold),
        "length_psi": clean(length_psi),
        "mean_length_reference": clean(ref_lengths.mean()),
        "mean_length_current": clean(cur_lengths.mean()),
        "oov_rate_reference": clean(oov_ref),
        "oov_rate_current": clean(oov_cur),
        "oov_rise": clean(oov_rise),
        "drifted": bool(length_psi >= threshold or oov_rise > OOV_RISE),
    }


def summary(report: dict[str, Any]) -> str:
    """The Markdown summary of a `text_drift` report: lengths and out-of-vocabulary rates."""
    body = table(
        ["metric", "reference", "current"],
        [
            ["mean tokens per text", report["mean_length_reference"], report["mean_length_current"]],
            ["out-of-vocabulary rate", report["oov_rate_reference"], report["oov_rate_current"]],
        ],
    )
    return summary_markdown(report, [*body, "", f"Token-length PSI {cell(report['length_psi'])}."])
