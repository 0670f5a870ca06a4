"""Text sources of the `text` task, its word tokenizer and its token-level augmentation.

Sources: a seeded synthetic review generator (`generate_reviews`, with a behavioural `challenge_set`
from the same grammar), a CSV/TSV/JSONL table and a folder of .txt files with one subfolder per class
(the IMDB layout). Each becomes the raw text table: `text`, `label` (str), the configured group columns
and `source` (where the row came from). Every failure is a `TextDataError` naming the file (and the
line, column or key); bytes that are not UTF-8 are reported with their line number.

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

import csv
import io
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dlops.config import (
    SyntheticReviewsSource,
    TextAugmentConfig,
    TextFolderSource,
    TextTableSource,
    TextTask,
    TokenizerConfig,
)
from dlops.data.files import project_path

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
CHALLENGE_TESTS = ("negation", "contrast", "filler_invariance")


class TextDataError(ValueError):
    """A text source cannot be loaded; the message names the file (and the line, column or key)."""


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


# ---------------------------------------------------------------------------------------------- loading
def load_texts(task_cfg: TextTask, root: Path) -> pd.DataFrame:
    """The raw text table: text, label (str), the configured group columns, source."""
    src = task_cfg.ingest
    if isinstance(src, SyntheticReviewsSource):
        return generate_reviews(src)
    if isinstance(src, TextTableSource):
        return _table(src, task_cfg.columns.sensitive, root)
    if isinstance(src, TextFolderSource):
        return _folder(src, root)
    raise TextDataError(f"ingest.source: unknown text source {src!r}")


def _decode_utf8(data: bytes, where: str) -> str:
    """`data` as text; bytes that are not UTF-8 raise naming `where`, the line and the column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise TextDataError(
            f"{where}:{line}: byte {data[error.start]:#04x} at column {column} is not valid UTF-8"
        ) from None


def _table(src: TextTableSource, groups: list[str], root: Path) -> pd.DataFrame:
    path = _file(src.path, root)
    data = path.read_bytes()
    text = _decode_utf8(data, src.path).removeprefix("\ufeff")
    if not text.strip():
        raise TextDataError(f"{src.path}: file is empty")
    fmt = src.format if src.format != "auto" else _format_from_extension(src.path)
    wanted = {"text": src.text_column, "label": src.label_column, **{g: g for g in groups}}
    if fmt == "jsonl":
        columns, lines = _jsonl_rows(text, src.path, wanted)
    else:
        columns, lines = _delimited_rows(text, src.path, wanted, "\t" if fmt == "tsv" else ",")
    if not lines:
        raise TextDataError(f"{src.path}: no rows below the header")
    frame = pd.DataFrame(columns)
    frame["source"] = [f"{src.path}:{line}" for line in lines]
    return frame


def _format_from_extension(path: str) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    for fmt, extensions in {"csv": {".csv"}, "tsv": {".tsv", ".tab"}, "jsonl": {".jsonl", ".ndjson"}}.items():
        if extensions & set(suffixes):
            return fmt
    raise TextDataError(
        f"{path}: cannot tell the format from the extension; set ingest.format (csv|tsv|jsonl)"
    )


def _delimited_rows(
    text: str, where: str, wanted: dict[str, str], delimiter: str
) -> tuple[dict[str, list[str]], list[int]]:
    """Columns named in `wanted` (output name -> file column) and the physical line each row starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        positions = _header_positions(header, wanted, where)
        columns: dict[str, list[str]] = {name: [] for name in wanted}
        lines: list[int] = []
        start = reader.line_num + 1
        for row in reader:
            if row:
                if len(row) != len(header):
                    raise TextDataError(f"{where}:{start}: {len(row)} fields, the header has {len(header)}")
                for name, position in positions.items():
                    columns[name].append(row[position])
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as error:
        raise TextDataError(f"{where}:{reader.line_num}: {error}") from None
    return columns, lines


def _header_positions(header: list[str], wanted: dict[str, str], where: str) -> dict[str, int]:
    missing = [column for column in wanted.values() if column not in header]
    if missing:
        raise TextDataError(f"{where}: no column {missing[0]!r} (the header has {header})")
    return {name: header.index(column) for name, column in wanted.items()}


def _jsonl_rows(text: str, where: str, wanted: dict[str, str]) -> tuple[dict[str, list[str]], list[int]]:
    columns: dict[str, list[str]] = {name: [] for name in wanted}
    lines: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TextDataError(f"{where}:{number}: not JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise TextDataError(f"{where}:{number}: expected a JSON object, got {type(record).__name__}")
        for name, key in wanted.items():
            if key not in record:
                raise TextDataError(f"{where}:{number}: no key {key!r} (column {key!r} is missing)")
            value = record[key]
            columns[name].append("" if value is None else str(value))
        lines.append(number)
    return columns, lines


def _folder(src: TextFolderSource, root: Path) -> pd.DataFrame:
    folder = _directory(src.path, root)
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise TextDataError(f"{src.path}: no class subfolders (expected one folder of .txt files per class)")
    texts, labels, sources = [], [], []
    for class_dir in class_dirs:
        files = sorted(f for f in class_dir.iterdir() if f.suffix == ".txt" and not f.name.startswith("."))
        if not files:
            raise TextDataError(f"{src.path}/{class_dir.name}: no .txt files")
        for file in files:
            relative = file.relative_to(folder).as_posix()
            texts.append(_decode_utf8(file.read_bytes(), f"{src.path}/{relative}").removeprefix("\ufeff"))
            labels.append(class_dir.name)
            sources.append(relative)
    return pd.DataFrame({"text": texts, "label": labels, "source": sources})


def _file(path: str, root: Path) -> Path:
    return project_path(path, root, "file", TextDataError)


def _directory(path: str, root: Path) -> Path:
    return project_path(path, root, "folder", TextDataError)


# -------------------------------------------------------------------------------------------- tokenizer
class WordTokenizer:
    """Word-level tokenizer: words and punctuation marks, ids 0 = <pad>, 1 = <unk>."""

    def __init__(self, vocab: Sequence[str], max_length: int, lowercase: bool) -> None:
        if list(vocab[:2]) != [PAD_TOKEN, UNK_TOKEN]:
            raise TextDataError(
                f"vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}, got {list(vocab[:2])}"
            )
        self.vocab = list(vocab)
        self.max_length = max_length
        self.lowercase = lowercase
        self.ids = {token: i for i, token in enumerate(self.vocab)}

    @classmethod
    def fit(cls, texts: Iterable[str], cfg: TokenizerConfig) -> WordTokenizer:
        """Tokens seen at least `min_freq` times, the `max_vocab - 2` most frequent (ties alphabetical)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_split(text, cfg.lowercase))
        kept = sorted((t for t, c in counts.items() if c >= cfg.min_freq), key=lambda t: (-counts[t], t))
        kept = [t for t in kept if t not in (PAD_TOKEN, UNK_TOKEN)][: cfg.max_vocab - 2]
        return cls([PAD_TOKEN, UNK_TOKEN, *kept], cfg.max_length, cfg.lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        return _split(text, self.lowercase)

    def encode(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids (N, max_length) int64, right-padded with 0 and truncated, and lengths (N,) int64 (>= 1)."""
        rows = []
        for text in texts:
            ids = [self.ids.get(token, UNK_ID) for token in self.tokenize(text)[: self.max_length]]
            rows.append(ids or [UNK_ID])
        encoded = np.zeros((len(rows), self.max_length), dtype=np.int64)
        lengths = np.fromiter((len(ids) for ids in rows), dtype=np.int64, count=len(rows))
        for i, ids in enumerate(rows):
            encoded[i, : len(ids)] = ids
        return encoded, lengths

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids`, padding dropped; an id outside the vocabulary raises."""
        tokens = []
        for i in ids:
            if not 0 <= int(i) < self.vocab_size:
                raise TextDataError(f"token id {int(i)} is outside the vocabulary (size {self.vocab_size})")
            if int(i) != PAD_ID:
                tokens.append(self.vocab[int(i)])
        return tokens

    def to_json(self, path: Path) -> None:
        data = {"vocab": self.vocab, "max_length": self.max_length, "lowercase": self.lowercase}
        Path(path).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_json(cls, path: Path) -> WordTokenizer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(data["vocab"], int(data["max_length"]), bool(data["lowercase"]))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TextDataError(f"{path}: not a tokenizer JSON file ({error})") from None
        except KeyError as error:
            raise TextDataError(f"{path}: tokenizer JSON has no key {error.args[0]!r}") from None


def _split(text: str, lowercase: bool) -> list[str]:
    return TOKEN_PATTERN.findall(text.lower() if lowercase else text)


# ---------------------------------------------------------------------------------------- augmentation
TextAugment = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]]


def make_text_augment(cfg: TextAugmentConfig) -> TextAugment | None:
    """Token dropout to <unk> and adjacent swaps on a batch of ids (B, L); None when both are off.

    Padding (id 0) is never touched. Each adjacent pair of non-pad tokens is swapped with probability
    `local_swap`, skipping a pair that overlaps the swapped pair before it, so swaps never chain.
    """
    if cfg.token_dropout == 0 and cfg.local_swap == 0:
        return None

    def augment(ids: Tensor, labels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        out = ids
        if cfg.token_dropout > 0:
            drop = _uniform(ids.shape, generator, ids.device) < cfg.token_dropout
            out = out.masked_fill(drop & (ids != PAD_ID), UNK_ID)
        if cfg.local_swap > 0 and ids.shape[1] > 1:
            out = _swap_adjacent(out, cfg.local_swap, generator)
        return out, labels

    return augment


def _uniform(shape: torch.Size, generator: torch.Generator, device: torch.device) -> Tensor:
    """U(0, 1) drawn on the generator's device (so the draws depend only on it), then moved."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _swap_adjacent(ids: Tensor, share: float, generator: torch.Generator) -> Tensor:
    left, right = ids[:, :-1], ids[:, 1:]
    drawn = (left != PAD_ID) & (right != PAD_ID)
    drawn &= _uniform(left.shape, generator, ids.device) < share
    previous = torch.nn.functional.pad(drawn[:, :-1], (1, 0), value=False)
    swap = drawn & ~previous
    out = ids.clone()
    out[:, :-1] = torch.where(swap, right, out[:, :-1])
    out[:, 1:] = torch.where(swap, left, out[:, 1:])
    return out
