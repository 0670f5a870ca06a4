"""The word tokenizer of the `text` task: fitted on the training split, saved as JSON with the processed
data and shipped with a served model. Words and punctuation marks; ids 0 = <pad>, 1 = <unk>.

With `subword_buckets` set, a word outside the vocabulary is not <unk>: it gets the next id after the
vocabulary and the words spelled before it (`spelled`, kept in the JSON), and the model reads it by its
character n-grams (models/subwords.py). Encoding new texts adds their new words to `words`; a model
reads them once attached to this tokenizer (`attach`)."""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dlops.kinds.text.sources import TextDataError
from dlops.params import TokenizerConfig

PAD_ID = 0
UNK_ID = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


class WordTokenizer:
    """Word-level tokenizer: words and punctuation marks, ids 0 = <pad>, 1 = <unk>."""

    def __init__(
        self,
        vocab: Sequence[str],
        max_length: int,
        lowercase: bool,
        truncate: str = "head",
        subword_buckets: int = 0,
        spelled: Sequence[str] = (),
    ) -> None:
        if list(vocab[:2]) != [PAD_TOKEN, UNK_TOKEN]:
            raise TextDataError(
                f"vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}, got {list(vocab[:2])}"
            )
        self.vocab = list(vocab)
        self.max_length = max_length
        self.lowercase = lowercase
        self.truncate = truncate  # "head": the first max_length tokens; "head_tail": a quarter + the end
        self.subword_buckets = subword_buckets  # 0: words outside the vocabulary are <unk>
        self.words = [*self.vocab, *spelled]  # ids in order: the vocabulary, then spelled-out words
        self.ids = {token: i for i, token in enumerate(self.words)}

    @classmethod
    def fit(cls, texts: Iterable[str], cfg: TokenizerConfig) -> WordTokenizer:
        """Tokens seen at least `min_freq` times, the `max_vocab - 2` most frequent (ties alphabetical)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_split(text, cfg.lowercase))
        kept = sorted((t for t, c in counts.items() if c >= cfg.min_freq), key=lambda t: (-counts[t], t))
        kept = [t for t in kept if t not in (PAD_TOKEN, UNK_TOKEN)][: cfg.max_vocab - 2]
        vocab = [PAD_TOKEN, UNK_TOKEN, *kept]
        return cls(vocab, cfg.max_length, cfg.lowercase, cfg.truncate, cfg.subword_buckets)

    @property
    def vocab_size(self) -> int:
        """Vocabulary words (own embedding rows); spelled-out words have ids from here on."""
        return len(self.vocab)

    @property
    def spelled(self) -> list[str]:
        return self.words[self.vocab_size :]

    def subwords(self) -> dict[str, Any] | None:
        """What a model's subword embedding needs ({buckets, words}), None without subwords."""
        return {"buckets": self.subword_buckets, "words": list(self.words)} if self.subword_buckets else None

    def tokenize(self, text: str) -> list[str]:
        return _split(text, self.lowercase)

    def encode(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids (N, max_length) int64, right-padded with 0 and truncated, and lengths (N,) int64 (>= 1)."""
        rows = []
        known = self.ids.get  # without subwords a word is its id or <unk>: no call per token
        for text in texts:
            tokens = self.truncated(self.tokenize(text))
            if self.subword_buckets:
                ids = [self._id(token) for token in tokens]
            else:
                ids = [known(token, UNK_ID) for token in tokens]
            rows.append(ids or [UNK_ID])
        encoded = np.zeros((len(rows), self.max_length), dtype=np.int64)
        lengths = np.fromiter((len(ids) for ids in rows), dtype=np.int64, count=len(rows))
        for i, ids in enumerate(rows):
            encoded[i, : len(ids)] = ids
        return encoded, lengths

    def _id(self, token: str) -> int:
        found = self.ids.get(token)
        if found is not None:
            return found
        if not self.subword_buckets:
            return UNK_ID
        self.ids[token] = len(self.words)  # spelled out: read by its character n-grams
        self.words.append(token)
        return self.ids[token]

    def truncated(self, tokens: list[str]) -> list[str]:
        """At most max_length tokens: the head, or (`head_tail`, Sun et al. 2019) the first quarter and
        the last three quarters, where long reviews put their verdict."""
        if len(tokens) <= self.max_length or self.truncate == "head":
            return tokens[: self.max_length]
        head = self.max_length // 4
        return tokens[:head] + tokens[len(tokens) - (self.max_length - head) :]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids`, padding dropped; an id outside the vocabulary raises."""
        tokens = []
        for i in ids:
            if not 0 <= int(i) < len(self.words):
                raise TextDataError(f"token id {int(i)} is outside the vocabulary (size {len(self.words)})")
            if int(i) != PAD_ID:
                tokens.append(self.words[int(i)])
        return tokens

    def to_json(self, path: Path) -> None:
        data = {"vocab": self.vocab, "max_length": self.max_length, "lowercase": self.lowercase}
        if self.truncate != "head":
            data["truncate"] = self.truncate
        if self.subword_buckets:
            data |= {"subword_buckets": self.subword_buckets, "spelled": self.spelled}
        Path(path).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_json(cls, path: Path) -> WordTokenizer:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            truncate = str(data.get("truncate", "head"))
            subwords = int(data.get("subword_buckets", 0)), list(data.get("spelled", []))
            return cls(data["vocab"], int(data["max_length"]), bool(data["lowercase"]), truncate, *subwords)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TextDataError(f"{path}: not a tokenizer JSON file ({error})") from None
        except KeyError as error:
            raise TextDataError(f"{path}: tokenizer JSON has no key {error.args[0]!r}") from None


def attach(model: Any, tokenizer: WordTokenizer) -> None:
    """Let a model with subword vectors read the words `tokenizer` spells from now on (no-op without)."""
    embedding = _subword_embedding(model)
    if embedding is not None:
        embedding.attach(tokenizer.words)


@contextlib.contextmanager
def new_words_forgotten(model: Any, tokenizer: WordTokenizer) -> Iterator[None]:
    """Words the tokenizer spells inside the block are dropped from it and from the attached model's
    table when the block ends, so a server does not grow with every new word it reads (the served
    pyfunc, around each request)."""
    keep = len(tokenizer.words)
    try:
        yield
    finally:
        for word in tokenizer.words[keep:]:
            del tokenizer.ids[word]
        del tokenizer.words[keep:]
        embedding = _subword_embedding(model)
        if embedding is not None:
            embedding.forget(keep)


def _subword_embedding(model: Any) -> Any:
    """The model's SubwordEmbedding, or None (plain embedding rows, or no embedding)."""
    from dlops.models.subwords import SubwordEmbedding

    embedding = getattr(model, "embedding", None)
    return embedding if isinstance(embedding, SubwordEmbedding) else None


def _split(text: str, lowercase: bool) -> list[str]:
    return TOKEN_PATTERN.findall(text.lower() if lowercase else text)
