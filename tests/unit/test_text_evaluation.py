"""Challenge-set metrics and token attributions of the text families."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dlops.kinds.text.evaluate import challenge_report, predict_texts, token_attributions
from dlops.kinds.text.reviews import STYLES, challenge_set
from dlops.kinds.text.tokenizer import WordTokenizer
from dlops.models.mlp import build_mlp
from dlops.models.rnn import build_rnn
from dlops.models.transformer import build_transformer
from dlops.params import TokenizerConfig

CLASSES = ["neg", "pos"]
POSITIVE_WORDS = {w for s in STYLES.values() for w in s["adjectives"][1]} | {
    w for s in STYLES.values() for pair in s["verbs"][1] for w in pair
}
SENTENCES = [
    "The plot was really good.",
    "I did not enjoy the story, but the acting was great!",
    "Although the score was dreadful, the pacing was superb.",
    "We got popcorn and stuff.",
]


def perfect(texts: list[str]) -> np.ndarray:
    labels = dict(zip(*[challenge_set()[c] for c in ("text", "label")], strict=True))
    return np.array([labels[t] for t in texts])


def keyword_rule(texts: list[str]) -> np.ndarray:
    """ "pos" when any positive word occurs: blind to negation and to which clause of a contrast decides."""
    return np.array(["pos" if POSITIVE_WORDS & set(re.findall(r"\w+", t.lower())) else "neg" for t in texts])


def always_pos(texts: list[str]) -> np.ndarray:
    return np.array(["pos"] * len(texts))


def test_perfect_predictions_score_one_everywhere() -> None:
    metrics, table = challenge_report(perfect, CLASSES)
    assert metrics == {
        "challenge/negation/accuracy": 1.0,
        "challenge/negation/flip_rate": 1.0,
        "challenge/contrast/accuracy": 1.0,
        "challenge/contrast/flip_rate": 1.0,
        "challenge/filler_invariance/accuracy": 1.0,
        "challenge/filler_invariance/consistency": 1.0,
        "challenge/mean_accuracy": 1.0,
    }
    assert list(table.columns) == ["text", "label", "test", "prediction"]
    assert len(table) == 300 and (table["prediction"] == table["label"]).all()


def test_keyword_rule_never_flips() -> None:
    metrics, _ = challenge_report(keyword_rule, CLASSES, per_test=40)
    # negation: right on the plain original, wrong on its negation; contrast: both clauses hold a
    # positive word, so always "pos", right on exactly one of the two orders; fillers are neutral.
    assert metrics["challenge/negation/accuracy"] == 0.5
    assert metrics["challenge/negation/flip_rate"] == 0.0
    assert metrics["challenge/contrast/accuracy"] == 0.5
    assert metrics["challenge/contrast/flip_rate"] == 0.0
    assert metrics["challenge/filler_invariance/consistency"] == 1.0


def test_constant_prediction() -> None:
    metrics, table = challenge_report(always_pos, CLASSES, seed=3, per_test=20)
    filler = table[table["test"] == "filler_invariance"]
    filler_accuracy = round(float((filler["label"] == "pos").mean()), 6)
    assert metrics["challenge/negation/accuracy"] == 0.5
    assert metrics["challenge/contrast/accuracy"] == 0.5
    assert metrics["challenge/negation/flip_rate"] == 0.0
    assert metrics["challenge/contrast/flip_rate"] == 0.0
    assert metrics["challenge/filler_invariance/accuracy"] == filler_accuracy
    assert metrics["challenge/filler_invariance/consistency"] == 1.0
    assert metrics["challenge/mean_accuracy"] == pytest.approx((1.0 + filler_accuracy) / 3, abs=1e-6)


def test_no_pairs_gives_none() -> None:
    metrics, table = challenge_report(always_pos, CLASSES, per_test=1)
    assert table.empty and set(metrics.values()) == {None}


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not among the classes"):
        challenge_report(lambda texts: np.array(["maybe"] * len(texts)), CLASSES, per_test=4)
    with pytest.raises(ValueError, match="not among the classes"):
        challenge_report(always_pos, ["bad", "good"], per_test=4)


@pytest.fixture
def tokenizer() -> WordTokenizer:
    return WordTokenizer.fit(SENTENCES, TokenizerConfig(min_freq=1, max_length=16))


def tiny_models(vocab_size: int) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [
        build_rnn(input_shape=(16,), num_classes=2, vocab_size=vocab_size, embedding_dim=8, hidden_size=8),
        build_transformer(
            input_shape=(16,),
            num_classes=2,
            vocab_size=vocab_size,
            d_model=8,
            num_heads=2,
            num_layers=1,
            dim_feedforward=16,
        ),  # fmt: skip
        build_mlp(input_shape=(16,), num_classes=2, hidden_sizes=[8], vocab_size=vocab_size),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["rnn", "transformer", "mlp-occlusion"])
def test_token_attributions_svg(tokenizer: WordTokenizer, tmp_path: Path, index: int) -> None:
    """An SVG image (what `dvc plots` and the card show): every token in a box whose tooltip is its
    attribution, at most 1 in size with the largest exactly 1, under its target and predicted class."""
    import xml.etree.ElementTree as ET

    model = tiny_models(tokenizer.vocab_size)[index].train()
    texts = [*SENTENCES, "an unseen word"]
    targets = [1, 0, 1, 0, 1]
    first = token_attributions(model, tokenizer, texts, targets, tmp_path / "a.svg", steps=4, classes=CLASSES)
    second = token_attributions(
        model, tokenizer, texts, targets, tmp_path / "b.svg", steps=4, classes=CLASSES
    )
    assert model.training  # mode restored
    page = first.read_text(encoding="utf-8")
    assert first.read_bytes() == second.read_bytes()
    ET.fromstring(page)  # well-formed XML: browsers and DVC render it
    assert "<script" not in page and "href" not in page
    tokens = re.findall(r'<text x="[0-9.]+" y="[0-9]+" class="tok">([^<]*)</text>', page)
    assert tokens == [token for text in texts for token in tokenizer.tokenize(text)]
    weights = [float(w) for w in re.findall(r"<title>([-+][0-9.]+)</title>", page)]
    assert len(weights) == len(tokens)
    assert all(-1.0 <= w <= 1.0 for w in weights) and 1.0 in np.abs(weights)
    assert page.count("target: pos") == 3 and page.count("predicted: ") == 5


def test_predict_texts_returns_names(tokenizer: WordTokenizer) -> None:
    model = tiny_models(tokenizer.vocab_size)[0]
    names = predict_texts(model, tokenizer, SENTENCES, CLASSES, batch_size=3)
    assert names.shape == (4,) and set(names) <= set(CLASSES)
    logits = model.eval()(torch.as_tensor(tokenizer.encode(SENTENCES)[0]))[0]
    assert list(names) == [CLASSES[k] for k in logits.argmax(1).tolist()]
