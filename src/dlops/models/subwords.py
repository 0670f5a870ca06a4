"""fastText's subword vectors (Bojanowski et al. 2017) as the text families' token embedding: a word's
vector is the mean of its own row (vocabulary words only) and the rows of its character 3- to 5-grams,
the word wrapped in < and >, hashed into `buckets` shared rows. A word outside the vocabulary (rarer
than `min_freq` in training, or never seen) still reads as what it spells: "wretchedness" shares
"wretched"'s n-grams instead of becoming <unk>.

Ids below `vocab_size` are vocabulary words; ids from `vocab_size` on are words the tokenizer spelled
out (tokenizer.py, `subword_buckets`), in `words` order. The table of each word's rows is built from the
words themselves, so a checkpoint's config rebuilds it; `words` may be the tokenizer's own growing list
(`attach`), and ids beyond the table extend it from there.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NGRAM_SIZES = (3, 4, 5)
SLOTS = 24  # n-grams kept per word (a ten-letter word has 27)
SPECIAL_IDS = 2  # <pad> (the zero vector) and <unk>: their own row only


def char_ngram_buckets(word: str, buckets: int) -> list[int]:
    """Bucket ids of the word's character 3-, 4- and 5-grams (`<word>`), at most SLOTS of them."""
    marked = f"<{word}>"
    grams = [marked[i : i + n] for n in NGRAM_SIZES for i in range(len(marked) - n + 1)]
    return [zlib.crc32(gram.encode("utf-8")) % buckets for gram in grams[:SLOTS]]


def check_subwords(subwords: Any, vocab_size: int | None) -> None:
    """`subwords` as the trainer injects it: {"buckets": int >= 1, "words": [vocabulary, spelled...]}."""
    if subwords is None:
        return
    if not isinstance(subwords, dict) or set(subwords) != {"buckets", "words"}:
        raise ValueError("model.subwords is injected from the tokenizer ({buckets, words}); do not set it")
    buckets, words = subwords["buckets"], subwords["words"]
    if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < 1:
        raise ValueError(f"model.subwords.buckets must be a positive integer, got {buckets!r}")
    if vocab_size is None or len(words) < vocab_size:
        raise ValueError(f"model.subwords.words holds {len(words)} words, fewer than vocab_size {vocab_size}")


class SubwordEmbedding(nn.Embedding):
    """An nn.Embedding of vocab_size + buckets rows whose lookup averages each word's rows (above)."""

    rows: torch.Tensor  # (W, 1 + SLOTS) row ids per word, 0 = none; a non-persistent buffer

    def __init__(self, vocab_size: int, dim: int, buckets: int, words: Sequence[str]) -> None:
        super().__init__(vocab_size + buckets, dim, padding_idx=0)
        self.vocab_size = vocab_size
        self.buckets = buckets
        self.words = words
        self.register_buffer("rows", self._rows(0, len(words)), persistent=False)

    def _rows(self, start: int, stop: int) -> torch.Tensor:
        table = torch.zeros(stop - start, 1 + SLOTS, dtype=torch.long)
        for i in range(start, stop):
            if i == 0:
                continue  # <pad>: no rows, the zero vector
            own = [i] if i < self.vocab_size else []
            grams = [] if i < SPECIAL_IDS else char_ngram_buckets(self.words[i], self.buckets)
            ids = own + [self.vocab_size + b for b in grams]
            table[i - start, : len(ids)] = torch.tensor(ids)
        return table

    def attach(self, words: Sequence[str]) -> None:
        """Read ids past the table from `words` (a tokenizer's list, which grows as it spells new words)."""
        if list(words[: len(self.rows)]) != list(self.words[: len(self.rows)]):
            raise ValueError(
                "the tokenizer's words differ from the model's: not the tokenizer it was trained with"
            )
        self.words = words

    def forget(self, keep: int) -> None:
        """Drop the table's rows of words past the first `keep` (the tokenizer forgot them)."""
        if len(self.rows) > keep:
            self.rows = self.rows[:keep]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Vectors (..., D) of word ids (...): the mean of each word's own and n-gram rows."""
        unique, inverse = torch.unique(ids, return_inverse=True)
        top = int(unique[-1]) if len(unique) else 0
        if top >= len(self.rows):
            if top >= len(self.words):
                raise ValueError(
                    f"token id {top} is past the {len(self.words)} words this model knows: encode texts with "
                    "its own tokenizer and attach it (dlops.kinds.text.tokenizer.attach)"
                )
            self.rows = torch.cat([self.rows, self._rows(len(self.rows), top + 1).to(self.rows.device)])
        rows = self.rows[unique]  # (U, 1 + SLOTS)
        counts = (rows != 0).sum(1, keepdim=True).clamp(min=1)  # (U, 1)
        vectors = F.embedding(rows, self.weight, padding_idx=0).sum(1) / counts  # (U, D)
        return vectors[inverse]


def token_embedding(vocab_size: int, dim: int, subwords: dict[str, Any] | None) -> nn.Embedding:
    """The text families' embedding: plain rows, or subword vectors when the tokenizer spells words."""
    if subwords is None:
        return nn.Embedding(vocab_size, dim, padding_idx=0)
    return SubwordEmbedding(vocab_size, dim, subwords["buckets"], subwords["words"])


def known_ids(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Spelled-out words (ids >= vocab_size) as <unk> (1): for what counts vocabulary words only."""
    return torch.where(ids < vocab_size, ids, torch.ones_like(ids))
