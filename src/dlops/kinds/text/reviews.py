"""Synthetic reviews of the `text` task (`generate_reviews`) and a behavioural `challenge_set` from the
same grammar.

Synthetic reviews (every draw from `random.Random(seed)`, label noise from `numpy.random.default_rng`):
each review is one decisive core clause between optional neutral filler sentences and words, in one of
two writing styles (`group`): "formal" (positive rate ~0.40) and "casual" (~0.65), each with its own
aspects, adjectives, verbs and filler. The label is drawn first (from the group's rate), then a core
construction that expresses it:

- plain: "the plot was really good." / "i loved the ending."  (the word's polarity decides)
- negated: "the plot was not good.", "the score was never disappointing.", "it was not at all bad.",
  "i did not enjoy the story."  (negation flips the polarity of what follows it)
- contrast: "the plot was good, but the acting was awful." / "although the plot was good, the acting was
  awful." / "the acting was awful, although the plot was good."  (the clause after "but", or the one
  NOT introduced by "although", decides; the two clauses usually have opposite polarities, so the
  same multiset of words occurs with both labels and only word order tells them apart)

A bag-of-words model therefore cannot get the negated and contrast reviews right; short n-grams
("not good", "but awful") recover part of them and an order-aware model can recover all.

Distribution shift (`shift`, the defaults give the reviews above, byte for byte): `shift.length`
multiplies the amount of neutral filler (this changes the draws, so the reviews are not the unshifted
ones plus filler), and a `shift.novel_words` share of reviews end with one extra sentence of invented
words (`NOVEL_WORDS`, absent from the grammar), drawn from a second stream `random.Random(seed + 1)`,
so each review is the unshifted one (same label and group) with or without that sentence.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pandas as pd

from dlops.params import SyntheticReviewsSource

CHALLENGE_TESTS = ("negation", "contrast", "filler_invariance")


# --------------------------------------------------------------------------------------------- grammar
STYLES: dict[str, dict[str, Any]] = {
    "formal": {
        "positive_rate": 0.40,
        "aspects": ["screenplay", "cinematography", "direction", "score", "pacing", "narrative", "film"],
        "adjectives": {
            1: ["excellent", "superb", "compelling", "admirable", "exquisite", "masterful", "good"],
            0: ["tedious", "mediocre", "dreadful", "unconvincing", "insipid", "disappointing", "bad"],
        },
        "verbs": {  # (base, past)
            1: [("admire", "admired"), ("appreciate", "appreciated"), ("commend", "commended")],
            0: [("deplore", "deplored"), ("resent", "resented"), ("regret", "regretted")],
        },
        "intensifiers": ["very", "remarkably", "truly"],
        "subject": "I",
        "fillers": [
            "The picture premiered last autumn.",
            "It runs for approximately two hours.",
            "I attended a matinee screening.",
            "The studio released it in several countries.",
            "It is adapted from a novel.",
        ],
        "filler_words": ["frankly", "admittedly", "in my view"],
    },
    "casual": {
        "positive_rate": 0.65,
        "aspects": ["story", "acting", "humor", "ending", "soundtrack", "plot", "movie"],
        "adjectives": {
            1: ["awesome", "great", "fun", "amazing", "cool", "hilarious", "good"],
            0: ["lame", "boring", "awful", "dumb", "terrible", "cringey", "bad"],
        },
        "verbs": {
            1: [("love", "loved"), ("enjoy", "enjoyed"), ("dig", "dug")],
            0: [("hate", "hated"), ("dislike", "disliked"), ("regret", "regretted")],
        },
        "intensifiers": ["really", "very", "super"],
        "subject": "i",
        "fillers": [
            "saw it with my buddies last weekend.",
            "watched it on my laptop.",
            "it's about two hours long.",
            "we got popcorn and stuff.",
            "my cousin picked it.",
        ],
        "filler_words": ["honestly", "basically", "like"],
    },
}
GROUPS = ("formal", "casual")
# Share of each core construction; negated and contrast reviews are the ones a bag of words gets wrong.
CONSTRUCTIONS = {"plain": 0.66, "negated": 0.16, "contrast": 0.18}
OPPOSITE_CONTRAST = 0.85  # share of contrast reviews whose two clauses have opposite polarities
# Invented words, none of them in the grammar above: the out-of-vocabulary words of `shift.novel_words`.
NOVEL_WORDS = (
    "zorblax", "quimble", "frandish", "glorp", "snarvel", "quibnix", "vexmor", "drubble", "krensh",
    "wobbik", "threxa", "mullop", "yarvish", "blenth", "skorvy", "fribbit", "gonzle", "trazzle",
    "quorbish", "nimblox", "parvex", "zindle", "clumbot", "hexwarp", "brindock", "slurvian", "tovish",
    "jabbrel", "kwazzle", "ombrix", "flenzor", "grustle", "zephlin", "morbak", "quastle", "drevvy",
    "plomtic", "vornish", "snibbet", "xyloquent",
)  # fmt: skip


def _words(rng: random.Random, style: dict[str, Any], key: str, polarity: int) -> str:
    return str(rng.choice(style[key][polarity]))


def _adjective_phrase(rng: random.Random, style: dict[str, Any], polarity: int) -> str:
    adjective = _words(rng, style, "adjectives", polarity)
    if rng.random() < 0.3:
        return f"{rng.choice(style['intensifiers'])} {adjective}"
    return adjective


def _plain_clause(rng: random.Random, style: dict[str, Any], polarity: int) -> str:
    """A clause whose meaning is `polarity`, stated without negation."""
    if rng.random() < 0.25:
        _, past = rng.choice(style["verbs"][polarity])
        return f"{style['subject']} {past} the {rng.choice(style['aspects'])}"
    return f"the {rng.choice(style['aspects'])} was {_adjective_phrase(rng, style, polarity)}"


def _negated_clause(rng: random.Random, style: dict[str, Any], polarity: int) -> str:
    """A clause whose meaning is `polarity`, stated as the negation of the opposite polarity."""
    opposite = 1 - polarity
    aspect = rng.choice(style["aspects"])
    kind = rng.random()
    if kind < 0.2:
        base, past = rng.choice(style["verbs"][opposite])
        said = f"did not {base}" if rng.random() < 0.5 else f"never {past}"
        return f"{style['subject']} {said} the {aspect}"
    if kind < 0.35:
        return f"the {aspect} was not at all {_words(rng, style, 'adjectives', opposite)}"
    if kind < 0.6:  # negation scope: the same two words decide either way, by which one "not" touches
        return _scope_clause(rng, style, aspect, polarity)
    negator = rng.choice(["not", "never", "not"])
    return f"the {aspect} was {negator} {_adjective_phrase(rng, style, opposite)}"


def _scope_clause(rng: random.Random, style: dict[str, Any], aspect: str, polarity: int) -> str:
    """ "the plot was not dull, it was gripping": the adjective outside the negation decides."""
    negated, meant = (
        _words(rng, style, "adjectives", 1 - polarity),
        _words(rng, style, "adjectives", polarity),
    )
    return f"the {aspect} was not {negated}, it was {meant}"


def _clause(rng: random.Random, style: dict[str, Any], polarity: int) -> str:
    if rng.random() < 0.15:
        return _negated_clause(rng, style, polarity)
    return _plain_clause(rng, style, polarity)


def _contrast(rng: random.Random, style: dict[str, Any], polarity: int) -> str:
    """Two clauses; the one after "but" (or the one not introduced by "although") decides."""
    conceded = 1 - polarity if rng.random() < OPPOSITE_CONTRAST else polarity
    first, decisive = _clause(rng, style, conceded), _clause(rng, style, polarity)
    form = rng.random()
    if form < 0.5:
        return f"{first}, but {decisive}"
    if form < 0.75:
        return f"although {first}, {decisive}"
    return f"{decisive}, although {first}"


def _core(rng: random.Random, style: dict[str, Any], label: int, construction: str) -> str:
    if construction == "plain":
        return _plain_clause(rng, style, label)
    if construction == "negated":
        return _negated_clause(rng, style, label)
    return _contrast(rng, style, label)


def _sentence(clause: str) -> str:
    return clause[0].upper() + clause[1:] + "."


def _with_filler(rng: random.Random, style: dict[str, Any], core: str, amount: float = 1.0) -> str:
    """`core` as a sentence, with neutral filler words and sentences around it (label unchanged)."""
    if rng.random() < 0.3 * amount:
        core = f"{rng.choice(style['filler_words'])}, {core}"
    parts = [_sentence(core)]
    if rng.random() < 0.4 * amount:
        parts.insert(0, rng.choice(style["fillers"]))
    if rng.random() < 0.3 * amount:
        parts.append(rng.choice(style["fillers"]))
    return " ".join(p[0].upper() + p[1:] for p in parts)


def _pick(rng: random.Random, shares: dict[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


# ------------------------------------------------------------------------------------- synthetic sources
def generate_reviews(src: SyntheticReviewsSource) -> pd.DataFrame:
    """`src.rows` seeded reviews: text, label ("pos"/"neg"), group ("formal"/"casual"), source."""
    rng = random.Random(src.seed)
    novel = random.Random(src.seed + 1)  # a second stream: the base draws never depend on the shift
    texts, labels, groups = [], [], []
    for _ in range(src.rows):
        group = GROUPS[rng.random() < 0.5]
        style = STYLES[group]
        label = int(rng.random() < style["positive_rate"])
        core = _core(rng, style, label, _pick(rng, CONSTRUCTIONS))
        text = _with_filler(rng, style, core, amount=src.shift.length)
        if src.shift.novel_words > 0 and novel.random() < src.shift.novel_words:
            text += " " + _sentence(" ".join(novel.choices(NOVEL_WORDS, k=novel.randint(3, 6))))
        texts.append(text)
        labels.append(label)
        groups.append(group)
    positive = np.array(labels, dtype=bool)
    noisy = np.random.default_rng(src.seed).choice(src.rows, round(src.label_noise * src.rows), replace=False)
    positive[noisy] = ~positive[noisy]
    return pd.DataFrame(
        {
            "text": texts,
            "label": np.where(positive, "pos", "neg"),
            "group": groups,
            "source": [f"synthetic-reviews[{i}]" for i in range(src.rows)],
        }
    )


def challenge_set(seed: int = 0, per_test: int = 100) -> pd.DataFrame:
    """Behavioural tests from the reviews' grammar: `per_test // 2` pairs of consecutive rows per test.

    - negation: negation scope, "X was not A, it was B" then "X was not B, it was A": the same words,
      opposite labels, so only a model that reads order (what "not" touches) gets both right.
    - contrast: "A, but B" then "B, but A" with A and B of opposite polarity; the labels flip.
    - filler_invariance: a review, then the same core with neutral filler around it; same label.
    """
    rng = random.Random(seed)
    rows: list[tuple[str, str, str]] = []
    for test in CHALLENGE_TESTS:
        for _ in range(per_test // 2):
            style = STYLES[GROUPS[rng.random() < 0.5]]
            label = int(rng.random() < 0.5)
            rows += [
                (text, "pos" if y else "neg", test) for text, y in _challenge_pair(rng, style, label, test)
            ]
    return pd.DataFrame(rows, columns=["text", "label", "test"])


def _challenge_pair(
    rng: random.Random, style: dict[str, Any], label: int, test: str
) -> list[tuple[str, int]]:
    if test == "negation":
        aspect = rng.choice(style["aspects"])
        good, bad = _words(rng, style, "adjectives", label), _words(rng, style, "adjectives", 1 - label)
        return [
            (_sentence(f"the {aspect} was not {bad}, it was {good}"), label),
            (_sentence(f"the {aspect} was not {good}, it was {bad}"), 1 - label),
        ]
    if test == "contrast":
        a, b = _plain_clause(rng, style, 1 - label), _plain_clause(rng, style, label)
        return [(_sentence(f"{a}, but {b}"), label), (_sentence(f"{b}, but {a}"), 1 - label)]
    core = _core(rng, style, label, _pick(rng, CONSTRUCTIONS))
    plain = filled = _sentence(core)
    while filled == plain:
        filled = _with_filler(rng, style, core, amount=2.5)
    return [(plain, label), (filled, label)]
