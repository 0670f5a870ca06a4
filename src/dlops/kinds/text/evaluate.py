"""Evaluation of the text families: behavioural challenge tests and token attributions.

`challenge_report` runs the reviews grammar's challenge set (`dlops.kinds.text.reviews.challenge_set`)
through a `predict(texts) -> class names` function and returns flat JSON-safe metrics (floats rounded to 6
decimals, None where undefined) plus the per-example table. `token_attributions` writes a self-contained
HTML page colouring each token by its attribution to a target class (integrated gradients on the
embedding layer, or occlusion for a model without one); identical inputs give identical bytes.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlops.evaluation.report import clean
from dlops.kinds.text.reviews import CHALLENGE_TESTS, challenge_set
from dlops.kinds.text.tokenizer import PAD_ID, UNK_ID, UNK_TOKEN, WordTokenizer

if TYPE_CHECKING:
    import torch
    from torch import nn

Metrics = dict[str, float | None]
FLIP_TESTS = ("negation", "contrast")  # pairs whose labels differ: the prediction should flip too


# ------------------------------------------------------------------------------------------ predictions
def predict_texts(
    model: nn.Module, tokenizer: WordTokenizer, texts: list[str], classes: list[str], batch_size: int = 256
) -> np.ndarray:
    """Predicted class names (N,) of `texts`: argmax of the logits, the model in eval mode (restored)."""
    import torch

    if not texts:
        return np.array([], dtype=object)
    ids, _ = tokenizer.encode(texts)  # (N, L)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            chunks = [
                model(torch.as_tensor(ids[i : i + batch_size], device=device))[0].argmax(1).cpu()
                for i in range(0, len(ids), batch_size)
            ]
    finally:
        model.train(was_training)
    return np.array(classes, dtype=object)[torch.cat(chunks).numpy()]


# ------------------------------------------------------------------------------------------ challenge set
def challenge_report(
    predict: Callable[[list[str]], np.ndarray],
    classes: list[str],
    seed: int = 0,
    per_test: int = 100,
) -> tuple[Metrics, pd.DataFrame]:
    """Behavioural tests: metrics and the per-example table (text, label, test, prediction).

    Keys: `challenge/<test>/accuracy` for each test in `CHALLENGE_TESTS`; for negation and contrast also
    `challenge/<test>/flip_rate` (share of the pairs with differing labels whose two predictions differ);
    `challenge/filler_invariance/consistency` (share of pairs predicted alike); `challenge/mean_accuracy`
    (mean of the test accuracies). Each pair is two consecutive rows of a test (original, variant).
    """
    table = challenge_set(seed=seed, per_test=per_test)
    missing = sorted(set(table["label"]) - set(classes))
    if missing:
        raise ValueError(f"challenge labels {missing} are not among the classes {classes}")
    predictions = np.asarray(predict(table["text"].tolist()), dtype=object).ravel()
    if len(predictions) != len(table):
        raise ValueError(f"predict returned {len(predictions)} predictions for {len(table)} texts")
    unknown = sorted({str(p) for p in predictions} - set(classes))
    if unknown:
        raise ValueError(f"predict returned names {unknown} that are not among the classes {classes}")
    table["prediction"] = predictions.astype(str)
    out: Metrics = {}
    accuracies = []
    for test in CHALLENGE_TESTS:
        rows = table[table["test"] == test]
        accuracy = _share(rows["prediction"].to_numpy() == rows["label"].to_numpy())
        out[f"challenge/{test}/accuracy"] = accuracy
        if accuracy is not None:
            accuracies.append(accuracy)
        original, variant = rows.iloc[0::2], rows.iloc[1::2]
        same_prediction = original["prediction"].to_numpy() == variant["prediction"].to_numpy()
        if test in FLIP_TESTS:
            labels_differ = original["label"].to_numpy() != variant["label"].to_numpy()
            out[f"challenge/{test}/flip_rate"] = _share(~same_prediction[labels_differ])
        else:
            out[f"challenge/{test}/consistency"] = _share(same_prediction)
    out["challenge/mean_accuracy"] = clean(np.mean(accuracies)) if accuracies else None
    return out, table.reset_index(drop=True)


def _share(flags: np.ndarray) -> float | None:
    """Share of True in `flags`, rounded; None when empty."""
    return clean(float(np.mean(flags))) if len(flags) else None


# ------------------------------------------------------------------------------------------ attributions
def token_attributions(
    model: nn.Module,
    tokenizer: WordTokenizer,
    texts: list[str],
    targets: list[int],
    path: Path,
    steps: int = 32,
    classes: list[str] | None = None,
) -> Path:
    """An SVG image (self-contained, deterministic bytes; `dvc plots` and the model card show it as a
    figure) colouring each token of `texts` by its
    attribution to the target class `targets[i]` (green = evidence for it, red = against), with the
    target and predicted class (names from `classes`, else indices).

    With `model.embedding`: captum `LayerIntegratedGradients` on it (`steps` steps, baseline all-padding
    ids, i.e. the zero padding embedding; the model keeps the real text's lengths/mask throughout),
    summed over the embedding dimension. Without one (the bag-of-words MLP): occlusion, token i scoring
    p(target) - p(target with token i replaced by <unk>). Scores are divided by the text's largest
    absolute score, so each lies in [-1, 1]. The model runs in eval mode (its mode is restored).
    """
    import torch

    if len(texts) != len(targets):
        raise ValueError(f"got {len(texts)} texts but {len(targets)} targets")
    device = next(model.parameters()).device
    ids_np, lengths = tokenizer.encode(texts)
    ids = torch.as_tensor(ids_np, device=device)  # (N, L)
    target = torch.as_tensor(targets, dtype=torch.int64, device=device)  # (N,)
    was_training = model.training
    model.eval()
    try:
        if isinstance(getattr(model, "embedding", None), torch.nn.Embedding):
            scores, method = _integrated_gradients(model, ids, target, steps), "integrated gradients"
        else:
            scores, method = _occlusion(model, ids, lengths, target), "occlusion (<unk>)"
        with torch.no_grad():
            probs = torch.softmax(model(ids)[0].double(), dim=1).cpu().numpy()  # (N, K)
    finally:
        model.train(was_training)
    names = classes if classes is not None else [str(k) for k in range(probs.shape[1])]
    rows = []
    for i, text in enumerate(texts):
        tokens = tokenizer.tokenize(text)[: tokenizer.max_length] or [UNK_TOKEN]
        weights = _normalise(scores[i, : int(lengths[i])])
        predicted = int(probs[i].argmax())
        meta = f"target: {names[targets[i]]} (p={probs[i, targets[i]]:.3f}) · predicted: {names[predicted]}"
        rows.append((meta, tokens, weights))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_svg_page(method, rows).encode("utf-8"))
    return path


def _integrated_gradients(
    model: nn.Module, ids: torch.Tensor, target: torch.Tensor, steps: int
) -> np.ndarray:
    """Layer IG on `model.embedding`, summed over the embedding dimension: (N, L) float64.

    The model always runs on the real ids (so an RNN packs and a transformer masks/truncates as for the
    real text); a hook swaps the embedding output for the embedding of the ids captum passes, so the
    all-padding baseline becomes zero embeddings of the real text's width.
    """
    import torch
    import torch.nn.functional as F
    from captum.attr import LayerIntegratedGradients

    from dlops.models.subwords import SubwordEmbedding

    embedding = model.embedding
    assert isinstance(embedding, torch.nn.Embedding)
    passed: dict[str, torch.Tensor] = {}

    def embed_passed(module: nn.Embedding, args: Any, output: torch.Tensor) -> torch.Tensor:
        ids = passed["ids"][:, : output.shape[1]]
        if isinstance(module, SubwordEmbedding):  # each word the mean of its n-gram rows
            return module.embed(ids)
        return F.embedding(ids, module.weight, module.padding_idx)

    def forward(batch: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        passed["ids"] = batch
        return model(real)[0]

    handle = embedding.register_forward_hook(embed_passed)
    try:
        attributions = LayerIntegratedGradients(forward, embedding).attribute(
            ids,
            baselines=torch.full_like(ids, PAD_ID),
            target=target,
            additional_forward_args=(ids,),
            n_steps=steps,
        )  # (N, L', E)
    finally:
        handle.remove()
    scores = np.zeros(ids.shape, dtype=np.float64)  # (N, L)
    summed = attributions.detach().sum(-1).cpu().double().numpy()  # (N, L')
    scores[:, : summed.shape[1]] = summed
    return scores


def _occlusion(model: nn.Module, ids: torch.Tensor, lengths: np.ndarray, target: torch.Tensor) -> np.ndarray:
    """p(target) minus p(target) with each token in turn replaced by <unk>: (N, L) float64."""
    import torch

    scores = np.zeros(ids.shape, dtype=np.float64)
    with torch.no_grad():
        for i, n in enumerate(lengths.tolist()):
            variants = ids[i].repeat(n + 1, 1)  # (n + 1, L): row 0 the text, row j + 1 token j occluded
            positions = torch.arange(n, device=ids.device)
            variants[positions + 1, positions] = UNK_ID
            probs = torch.softmax(model(variants)[0].double(), dim=1)[:, int(target[i])]  # (n + 1,)
            scores[i, :n] = (probs[0] - probs[1:]).cpu().numpy()
    return scores


def _normalise(scores: np.ndarray) -> np.ndarray:
    largest = float(np.abs(scores).max()) if scores.size else 0.0
    return scores / largest if largest > 0 else np.zeros_like(scores)


# ------------------------------------------------------------------------------------------ SVG
CHAR_W, LINE_H, WIDTH = 7.8, 22, 960  # monospace 13px: pixels per character, per line; image width


def _svg_page(method: str, rows: list[tuple[str, list[str], np.ndarray]]) -> str:
    """Each text as a paragraph of token boxes (green = evidence for the target class, red = against,
    shade = |attribution| / largest in the text; the value in each token's tooltip), under its target and
    predicted class. Lines wrap at WIDTH; monospace, so a token's box width is known without a font."""
    y = 28
    out = [
        f'<text x="8" y="{y}" class="meta">{html.escape(method)}; green = evidence for the target class, '
        "red = against; shade = |attribution| / largest in the text</text>"
    ]
    for meta, tokens, weights in rows:
        y += 2 * LINE_H + 8
        out.append(f'<text x="8" y="{y - LINE_H}" class="meta">{html.escape(meta)}</text>')
        x = 8.0
        for token, weight in zip(tokens, weights.tolist(), strict=True):
            w = CHAR_W * len(token) + 8
            if x + w > WIDTH - 8 and x > 8:
                x, y = 8.0, y + LINE_H
            rgb = "22,163,74" if weight >= 0 else "220,38,38"  # green for, red against the target class
            out.append(
                f'<g><title>{weight:+.3f}</title><rect x="{x:.1f}" y="{y - 15}" width="{w:.1f}" height="20" '
                f'rx="3" fill="rgb({rgb})" fill-opacity="{abs(weight):.3f}"/>'
                f'<text x="{x + 4:.1f}" y="{y}" class="tok">{html.escape(token)}</text></g>'
            )
            x += w + 4
    height = y + 16
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">\n<title>Token attributions</title>\n'
        "<style>text{font-family:monospace;font-size:13px;fill:#222}"
        "text.meta{font-family:sans-serif;font-size:12px;fill:#555}</style>\n"
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>\n' + "\n".join(out) + "\n</svg>\n"
    )
