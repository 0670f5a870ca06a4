"""Text data: synthetic reviews, challenge set, table/folder loaders, word tokenizer, token augmentation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from dlops.kinds.text.augment import make_text_augment
from dlops.kinds.text.reviews import NOVEL_WORDS, challenge_set, generate_reviews
from dlops.kinds.text.sources import TextDataError, load_texts
from dlops.kinds.text.tokenizer import WordTokenizer
from dlops.params import SyntheticReviewsSource, TextAugmentConfig, TextTask, TokenizerConfig


def reviews(rows: int = 2000, seed: int = 3, label_noise: float = 0.0) -> Any:
    src = SyntheticReviewsSource(source="synthetic-reviews", rows=rows, seed=seed, label_noise=label_noise)
    return generate_reviews(src)


def task(ingest: dict[str, Any], sensitive: list[str] | None = None) -> TextTask:
    return TextTask.model_validate(
        {
            "kind": "text",
            "ingest": ingest,
            "columns": {"sensitive": sensitive or []},
            "validate": {"suite": "expectations/text.json"},
            "preprocess": {},
            "augment": {},
        }
    )


def tokenizer_cfg(**kwargs: Any) -> TokenizerConfig:
    return TokenizerConfig(**{"min_freq": 1, "max_vocab": 100, "max_length": 6, **kwargs})


# ------------------------------------------------------------------------------------------- synthetic
def test_reviews_are_deterministic_with_the_expected_columns() -> None:
    first, again, other = reviews(seed=5), reviews(seed=5), reviews(seed=6)
    assert list(first.columns) == ["text", "label", "group", "source"]
    assert first.equals(again)
    assert not first["text"].equals(other["text"])
    assert set(first["label"]) == {"pos", "neg"}
    assert set(first["group"]) == {"formal", "casual"}
    assert first["source"].iloc[7] == "synthetic-reviews[7]"
    assert first["text"].str.len().min() > 0


def test_label_noise_flips_that_share_of_labels() -> None:
    clean, noisy = reviews(rows=1000, label_noise=0.0), reviews(rows=1000, label_noise=0.1)
    assert clean["text"].equals(noisy["text"])
    assert (clean["label"] != noisy["label"]).sum() == 100


def test_groups_have_different_positive_rates_and_vocabularies() -> None:
    frame = reviews(rows=4000)
    rates = frame.groupby("group")["label"].apply(lambda s: (s == "pos").mean())
    assert rates["casual"] - rates["formal"] > 0.15
    formal = " ".join(frame.loc[frame["group"] == "formal", "text"]).lower()
    casual = " ".join(frame.loc[frame["group"] == "casual", "text"]).lower()
    assert "cinematography" in formal and "cinematography" not in casual
    assert "soundtrack" in casual and "soundtrack" not in formal


def test_reviews_contain_negation_contrast_and_order_dependent_cases() -> None:
    text = " ".join(reviews(rows=1000)["text"]).lower()
    for phrase in (" not ", " never ", "not at all", ", but ", "although "):
        assert phrase in text


def test_bag_of_words_is_measurably_worse_than_ngrams() -> None:
    frame = reviews(rows=3000, label_noise=0.02)
    train, test = frame.iloc[:2250], frame.iloc[2250:]

    def accuracy(ngrams: tuple[int, int]) -> float:
        vectorizer = CountVectorizer(ngram_range=ngrams, token_pattern=r"(?u)\b\w+\b")
        model = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(train["text"]), train["label"])
        return float(model.score(vectorizer.transform(test["text"]), test["label"]))

    unigrams, trigrams = accuracy((1, 1)), accuracy((1, 3))
    assert 0.7 < unigrams < 0.88
    assert trigrams - unigrams >= 0.05


# ------------------------------------------------------------------------------------------- challenge
def test_challenge_set_pairs() -> None:
    frame = challenge_set(seed=1, per_test=20)
    assert list(frame.columns) == ["text", "label", "test"]
    assert frame["test"].value_counts().to_dict() == {"negation": 20, "contrast": 20, "filler_invariance": 20}
    assert frame.equals(challenge_set(seed=1, per_test=20))
    for test, flips in (("negation", True), ("contrast", True), ("filler_invariance", False)):
        rows = frame[frame["test"] == test].reset_index(drop=True)
        originals, variants = rows.iloc[0::2].reset_index(drop=True), rows.iloc[1::2].reset_index(drop=True)
        assert ((originals["label"] != variants["label"]) == flips).all(), test
        assert (originals["text"] != variants["text"]).all(), test
    negation = frame[frame["test"] == "negation"]["text"].tolist()
    words = [sorted(t.lower().rstrip(".").replace(",", "").split()) for t in negation[:2]]
    assert words[0] == words[1] and " not " in negation[0]  # same words, opposite labels: order decides
    contrast = frame[frame["test"] == "contrast"]["text"].tolist()
    assert sorted(contrast[0].lower().rstrip(".").split(", but ")) == sorted(
        contrast[1].lower().rstrip(".").split(", but ")
    )


# --------------------------------------------------------------------------------------------- loaders
def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def test_csv_loader_renames_columns_keeps_groups_and_names_lines(tmp_path: Path) -> None:
    write(tmp_path / "data/r.csv", 'review,stars,site\n"great, fun",5,a\n\n"multi\nline",1,b\nok,3,a\n')
    cfg = task(
        {"source": "text-table", "path": "data/r.csv", "text_column": "review", "label_column": "stars"},
        ["site"],
    )
    frame = load_texts(cfg, tmp_path)
    assert list(frame.columns) == ["text", "label", "site", "source"]
    assert frame["text"].tolist() == ["great, fun", "multi\nline", "ok"]
    assert frame["label"].tolist() == ["5", "1", "3"]
    assert frame["site"].tolist() == ["a", "b", "a"]
    assert frame["source"].tolist() == ["data/r.csv:2", "data/r.csv:4", "data/r.csv:6"]


def test_tsv_and_jsonl_loaders(tmp_path: Path) -> None:
    write(tmp_path / "r.tsv", "text\tlabel\nnice one\tpos\nbad, bad\tneg\n")
    frame = load_texts(task({"source": "text-table", "path": "r.tsv"}), tmp_path)
    assert frame["text"].tolist() == ["nice one", "bad, bad"]
    rows = [{"text": "fine", "label": 1, "g": "x"}, {"text": "meh", "label": 0, "g": "y"}]
    write(tmp_path / "r.jsonl", json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    frame = load_texts(task({"source": "text-table", "path": "r.jsonl"}, ["g"]), tmp_path)
    assert frame["label"].tolist() == ["1", "0"]
    assert frame["g"].tolist() == ["x", "y"]
    assert frame["source"].tolist() == ["r.jsonl:1", "r.jsonl:3"]


def test_folder_loader_one_subfolder_per_class(tmp_path: Path) -> None:
    write(tmp_path / "imdb/pos/2.txt", "loved it")
    write(tmp_path / "imdb/pos/1.txt", "great")
    write(tmp_path / "imdb/neg/1.txt", "awful\nreally")
    frame = load_texts(task({"source": "text-folder", "path": "imdb"}), tmp_path)
    assert frame["label"].tolist() == ["neg", "pos", "pos"]
    assert frame["text"].tolist() == ["awful\nreally", "great", "loved it"]
    assert frame["source"].tolist() == ["imdb/neg/1.txt", "imdb/pos/1.txt", "imdb/pos/2.txt"]


def test_non_utf8_bytes_name_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "r.csv", b"text,label\ngood,pos\nbad \xff,neg\n")
    with pytest.raises(TextDataError, match=r"r\.csv:3"):
        load_texts(task({"source": "text-table", "path": "r.csv"}), tmp_path)
    write(tmp_path / "f/pos/a.txt", "fine")
    write(tmp_path / "f/neg/b.txt", b"line one\nline two\ncaf\xe9\n")
    with pytest.raises(TextDataError, match=r"f/neg/b\.txt:3"):
        load_texts(task({"source": "text-folder", "path": "f"}), tmp_path)


def test_a_jsonl_text_that_is_not_a_string_names_its_line(tmp_path: Path) -> None:
    rows = [{"text": "fine", "label": 1}, {"text": None, "label": 0}, {"text": 4.5, "label": 1}]
    cfg = task({"source": "text-table", "path": "r.jsonl"})
    write(tmp_path / "r.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(TextDataError, match=r"r\.jsonl:3: key 'text' holds a float \(4\.5\), expected a str"):
        load_texts(cfg, tmp_path)
    write(tmp_path / "r.jsonl", "".join(json.dumps(row) + "\n" for row in rows[:2]))  # null: an empty text
    assert load_texts(cfg, tmp_path)["text"].tolist() == ["fine", ""]  # validate names its line


def test_missing_group_column_and_empty_sources_are_errors(tmp_path: Path) -> None:
    write(tmp_path / "r.csv", "text,label\ngood,pos\n")
    with pytest.raises(TextDataError, match=r"r\.csv.*'site'"):
        load_texts(task({"source": "text-table", "path": "r.csv"}, ["site"]), tmp_path)
    write(tmp_path / "empty.jsonl", "")
    with pytest.raises(TextDataError, match=r"empty\.jsonl: file is empty"):
        load_texts(task({"source": "text-table", "path": "empty.jsonl"}), tmp_path)
    (tmp_path / "f/pos").mkdir(parents=True)
    with pytest.raises(TextDataError, match=r"f/pos: no \.txt files"):
        load_texts(task({"source": "text-folder", "path": "f"}), tmp_path)


def test_synthetic_source_dispatch(tmp_path: Path) -> None:
    frame = load_texts(task({"source": "synthetic-reviews", "rows": 100}), tmp_path)
    assert len(frame) == 100 and "group" in frame


# ------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_encodes_pads_truncates_and_decodes() -> None:
    tok = WordTokenizer.fit(["The plot was good.", "the plot was bad!"], tokenizer_cfg())
    assert tok.vocab[:2] == ["<pad>", "<unk>"]
    assert tok.vocab[2:5] == ["plot", "the", "was"]  # count 2, alphabetical
    ids, lengths = tok.encode(["the plot was wonderful. really really good", "", "good"])
    assert ids.dtype == np.int64 and ids.shape == (3, 6)
    assert lengths.tolist() == [6, 1, 1]
    assert tok.decode(ids[0]) == ["the", "plot", "was", "<unk>", ".", "<unk>"]
    assert ids[1].tolist() == [1, 0, 0, 0, 0, 0]
    assert tok.decode(ids[2]) == ["good"]


def test_tokenizer_min_freq_max_vocab_and_case() -> None:
    texts = ["a a a b b c", "A d"]
    assert WordTokenizer.fit(texts, tokenizer_cfg(min_freq=2)).vocab == ["<pad>", "<unk>", "a", "b"]
    assert WordTokenizer.fit(texts, tokenizer_cfg(max_vocab=10)).vocab_size == 6
    cased = WordTokenizer.fit(texts, tokenizer_cfg(lowercase=False))
    assert "A" in cased.vocab and cased.vocab[2] == "a"
    small = WordTokenizer.fit([" ".join(f"w{i}" for i in range(20))], tokenizer_cfg(max_vocab=10))
    assert small.vocab_size == 10 and small.vocab[2:4] == ["w0", "w1"]


def test_tokenizer_json_round_trip(tmp_path: Path) -> None:
    tok = WordTokenizer.fit(["Über café, naïve!", "café"], tokenizer_cfg())
    tok.to_json(tmp_path / "tok.json")
    assert isinstance(json.loads((tmp_path / "tok.json").read_text(encoding="utf-8")), dict)
    back = WordTokenizer.from_json(tmp_path / "tok.json")
    assert back.vocab == tok.vocab and back.max_length == tok.max_length and back.lowercase == tok.lowercase
    texts = ["über café", "nothing known"]
    assert all((a == b).all() for a, b in zip(tok.encode(texts), back.encode(texts), strict=True))


# ------------------------------------------------------------------------------------------ augmentation
def test_augment_is_off_when_both_shares_are_zero() -> None:
    assert make_text_augment(TextAugmentConfig()) is None


def test_augment_keeps_shape_labels_and_padding_and_is_deterministic() -> None:
    augment = make_text_augment(TextAugmentConfig(token_dropout=0.2, local_swap=0.3))
    assert augment is not None
    ids = torch.randint(2, 50, (32, 40), generator=torch.Generator().manual_seed(0))
    lengths = torch.randint(1, 41, (32,), generator=torch.Generator().manual_seed(1))
    ids[torch.arange(40)[None, :] >= lengths[:, None]] = 0
    labels = torch.randint(0, 2, (32,))
    out, out_labels = augment(ids, labels, torch.Generator().manual_seed(7))
    again, _ = augment(ids, labels, torch.Generator().manual_seed(7))
    assert out.shape == ids.shape and out.dtype == torch.int64
    assert torch.equal(out_labels, labels) and torch.equal(out, again)
    assert torch.equal(out == 0, ids == 0)
    assert not torch.equal(out, ids)
    unk = (out == 1) & (ids != 1)
    assert 0.1 < unk.sum().item() / (ids != 0).sum().item() < 0.3
    kept = ~unk.any(dim=1)  # rows without <unk> hold the same tokens, maybe swapped
    assert torch.equal(out[kept].sort(dim=1).values, ids[kept].sort(dim=1).values)


def test_swap_only_moves_tokens_to_neighbours() -> None:
    augment = make_text_augment(TextAugmentConfig(local_swap=0.5))
    assert augment is not None
    ids = torch.tensor([[2, 3, 4, 5, 6, 0, 0]])
    out, _ = augment(ids, torch.tensor([1]), torch.Generator().manual_seed(3))
    assert out[0, 5:].tolist() == [0, 0]
    positions = {int(t): i for i, t in enumerate(out[0, :5])}
    assert sorted(positions) == [2, 3, 4, 5, 6]
    assert all(abs(positions[t] - (t - 2)) <= 1 for t in positions)


# ------------------------------------------------------------------------------------ distribution shift
def shifted_reviews(rows: int = 2000, seed: int = 3, label_noise: float = 0.0, **shift: Any) -> Any:
    """`reviews(rows, seed, label_noise)` drawn with `shift`."""
    src = SyntheticReviewsSource(
        source="synthetic-reviews", rows=rows, seed=seed, label_noise=label_noise, shift=shift
    )
    return generate_reviews(src)


def has_novel_word(text: str) -> bool:
    return bool(set(text.lower().replace(".", " ").split()) & set(NOVEL_WORDS))


def test_default_review_shift_is_identical_to_no_shift_key() -> None:
    base = reviews(label_noise=0.02)
    assert shifted_reviews(label_noise=0.02).equals(base)
    assert shifted_reviews(label_noise=0.02, length=1.0, novel_words=0.0).equals(base)


def test_length_shift_changes_the_mean_token_count() -> None:
    def mean_tokens(frame: Any) -> float:
        return float(np.mean([len(text.split()) for text in frame["text"]]))

    base = mean_tokens(reviews())
    assert mean_tokens(shifted_reviews(length=2.0)) > base + 2
    assert mean_tokens(shifted_reviews(length=0.0)) < base - 2


def test_novel_words_shift_adds_out_of_vocabulary_words_and_keeps_labels() -> None:
    base, shifted = reviews(label_noise=0.02), shifted_reviews(label_noise=0.02, novel_words=0.5)
    assert not any(has_novel_word(text) for text in base["text"])  # invented words are not in the grammar
    assert not any(has_novel_word(text) for text in challenge_set()["text"])
    share = np.mean([has_novel_word(text) for text in shifted["text"]])
    assert 0.4 < share < 0.6
    assert shifted["label"].tolist() == base["label"].tolist()
    assert shifted["group"].tolist() == base["group"].tolist()
    assert all(new.startswith(old) for new, old in zip(shifted["text"], base["text"], strict=True))
    assert all(has_novel_word(text) for text in shifted_reviews(rows=200, novel_words=1.0)["text"])


@pytest.mark.parametrize("shift", [{"length": -0.1}, {"length": 6}, {"novel_words": 1.5}, {"foo": 1}])
def test_invalid_review_shift_is_rejected(shift: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SyntheticReviewsSource(source="synthetic-reviews", shift=shift)


def test_head_tail_truncation_keeps_the_start_and_the_end(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(20)]
    cfg = TokenizerConfig(min_freq=1, max_length=8, truncate="head_tail")
    tokenizer = WordTokenizer.fit([" ".join(words)], cfg)
    ids, lengths = tokenizer.encode([" ".join(words), "w1 w2"])
    assert tokenizer.decode(ids[0]) == ["w0", "w1", "w14", "w15", "w16", "w17", "w18", "w19"]
    assert lengths.tolist() == [8, 2]
    tokenizer.to_json(tmp_path / "t.json")
    again = WordTokenizer.from_json(tmp_path / "t.json")
    assert np.array_equal(again.encode([" ".join(words)])[0], ids[:1])  # serving truncates the same way
    head = WordTokenizer.fit([" ".join(words)], TokenizerConfig(min_freq=1, max_length=8))
    assert head.decode(head.encode([" ".join(words)])[0][0]) == words[:8]
