"""Subword vectors for words outside the vocabulary (tokenizer `subword_buckets`, models/subwords.py):
the tokenizer spells such words out instead of writing <unk>, and the RNN and Transformer read each as
the mean of its character n-gram rows; the bag-of-words MLP counts them as <unk>."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlops.kinds.text.tokenizer import UNK_ID, WordTokenizer, attach
from dlops.models.registry import build_model
from dlops.models.subwords import SubwordEmbedding, char_ngram_buckets
from dlops.params.tasks_text import TokenizerConfig

TEXTS = ["a good film", "a bad film", "good good acting"]


def _tokenizer(buckets: int = 97) -> WordTokenizer:
    cfg = TokenizerConfig(min_freq=2, max_vocab=50, max_length=8, subword_buckets=buckets)
    return WordTokenizer.fit(TEXTS, cfg)  # vocabulary: good, a, film (seen twice or more)


def test_char_ngrams_mark_the_word_ends_and_hash_the_same_way_every_time() -> None:
    grams = char_ngram_buckets("film", 1_000_003)
    assert len(grams) == 4 + 3 + 2  # <fi fil ilm lm> <fil film ilm> <film film>
    assert grams == char_ngram_buckets("film", 1_000_003)
    assert char_ngram_buckets("films", 1_000_003)[:3] == grams[:3]  # "<fi", "fil", "ilm" shared


def test_words_outside_the_vocabulary_get_ids_after_it_and_keep_them() -> None:
    tokenizer = _tokenizer()
    assert tokenizer.vocab == ["<pad>", "<unk>", "good", "a", "film"]
    ids, _ = tokenizer.encode(["a wretched film", "wretched goodness"])
    assert ids[0, :3].tolist() == [3, 5, 4] and ids[1, :2].tolist() == [5, 6]
    assert tokenizer.spelled == ["wretched", "goodness"]
    assert tokenizer.decode(ids[1]) == ["wretched", "goodness"]
    plain = WordTokenizer.fit(TEXTS, TokenizerConfig(min_freq=2, max_vocab=50, max_length=8))
    assert plain.encode(["a wretched film"])[0][0, :3].tolist() == [3, UNK_ID, 4]


def test_the_json_keeps_the_spelled_words_in_id_order(tmp_path: Path) -> None:
    tokenizer = _tokenizer()
    tokenizer.encode(["bad acting"])
    tokenizer.to_json(tmp_path / "tokenizer.json")
    loaded = WordTokenizer.from_json(tmp_path / "tokenizer.json")
    assert loaded.words == tokenizer.words and loaded.subword_buckets == 97
    assert loaded.encode(["acting bad"])[0][0, :2].tolist() == [6, 5]


def test_a_spelled_word_is_the_mean_of_its_ngram_rows_and_a_vocabulary_word_adds_its_own() -> None:
    tokenizer = _tokenizer(buckets=97)
    tokenizer.encode(["wretched"])
    embedding = SubwordEmbedding(tokenizer.vocab_size, 4, 97, tokenizer.words)
    weight = embedding.weight.detach()
    spelled = [tokenizer.vocab_size + b for b in char_ngram_buckets("wretched", 97)]
    own = [4] + [tokenizer.vocab_size + b for b in char_ngram_buckets("film", 97)]
    vectors = embedding(torch.tensor([[5, 4, 0]])).detach()
    torch.testing.assert_close(vectors[0, 0], weight[spelled].mean(0))
    torch.testing.assert_close(vectors[0, 1], weight[own].mean(0))
    assert torch.equal(vectors[0, 2], torch.zeros(4))  # padding


def test_a_model_attached_to_its_tokenizer_reads_words_met_after_training() -> None:
    tokenizer = _tokenizer()
    config = {"embedding_dim": 8, "hidden_size": 8, "pooling": "mean", "cell": "gru"}
    config |= {"vocab_size": tokenizer.vocab_size, "subwords": tokenizer.subwords()}
    model = build_model("rnn", input_shape=(8,), num_classes=2, config={**config})
    model.eval()
    new = torch.as_tensor(tokenizer.encode(["a wonderful film"])[0])
    with pytest.raises(ValueError, match="past the 5 words this model knows"):
        model(new)
    attach(model, tokenizer)
    logits, _ = model(new)
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_a_checkpointed_subword_model_scores_the_same_after_loading(family: str, tmp_path: Path) -> None:
    from dlops.training.checkpoint import load_model, model_checkpoint, save_atomic

    tokenizer = _tokenizer()
    ids = torch.as_tensor(tokenizer.encode(["a wretched film", "goodness me"])[0])
    extra = {"rnn": {"embedding_dim": 8, "hidden_size": 8}, "transformer": {"d_model": 8, "num_heads": 2}}
    config = {**extra[family], "vocab_size": tokenizer.vocab_size, "subwords": tokenizer.subwords()}
    model = build_model(family, input_shape=(8,), num_classes=2, config=config).eval()
    ckpt = model_checkpoint(
        model=model, pair="text-x", task="text", family=family, model_config=config, input_shape=[8],
        classes=["neg", "pos"], train_config={}, best_epoch=1,
    )  # fmt: skip
    save_atomic(ckpt, tmp_path / "model.pt")
    loaded, _ = load_model(tmp_path / "model.pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids)[0], model(ids)[0])


def test_the_bag_of_words_counts_a_spelled_word_as_unknown() -> None:
    tokenizer = _tokenizer()
    ids = torch.as_tensor(tokenizer.encode(["a wretched film", "a bad film"])[0])
    config = {"hidden_sizes": [4], "vocab_size": tokenizer.vocab_size, "subwords": tokenizer.subwords()}
    model = build_model("mlp", input_shape=(8,), num_classes=2, config=config).eval()
    as_unknown = torch.where(ids < tokenizer.vocab_size, ids, torch.full_like(ids, UNK_ID))
    with torch.no_grad():
        assert np.allclose(model(ids)[0].numpy(), model(as_unknown)[0].numpy())


def test_the_served_text_model_reads_words_it_never_saw_by_their_spelling(tmp_path: Path) -> None:
    """The pyfunc loads the checkpoint and the shipped tokenizer, attaches them, and scores a text whose
    word is new to both the same as the model does on that word's n-gram rows (not as <unk>)."""
    from types import SimpleNamespace

    from dlops.serving import DlopsTextClassifier
    from dlops.training.checkpoint import model_checkpoint, save_atomic

    tokenizer = _tokenizer()
    config = {"embedding_dim": 8, "hidden_size": 8, "pooling": "mean", "cell": "gru"}
    config |= {"vocab_size": tokenizer.vocab_size, "subwords": tokenizer.subwords()}
    torch.manual_seed(0)
    model = build_model("rnn", input_shape=(8,), num_classes=2, config=config).eval()
    ckpt = model_checkpoint(
        model=model, pair="text-rnn", task="text", family="rnn", model_config=config, input_shape=[8],
        classes=["neg", "pos"], train_config={}, best_epoch=1,
    )  # fmt: skip
    save_atomic(ckpt, tmp_path / "model.pt")
    tokenizer.to_json(tmp_path / "tokenizer.json")
    served = DlopsTextClassifier()
    artifacts = {"checkpoint": str(tmp_path / "model.pt"), "tokenizer": str(tmp_path / "tokenizer.json")}
    served.load_context(SimpleNamespace(artifacts=artifacts))
    texts = ["a wonderful film", "a film"]
    frame = served.predict(None, pd.DataFrame({"text": texts}))
    words = tokenizer.encode(texts)[0]  # the same ids: "wonderful" spelled as word 5
    attach(model, tokenizer)
    with torch.no_grad():
        expected = torch.softmax(model(torch.as_tensor(words))[0], dim=1)[:, 1].numpy()
        as_unknown = torch.softmax(model(torch.tensor([[3, UNK_ID, 4]]))[0], dim=1)[0, 1].item()
    assert np.allclose(frame["proba_pos"].to_numpy(), expected, atol=1e-6)
    assert abs(frame["proba_pos"].iloc[0] - as_unknown) > 1e-6  # read by its spelling, not as <unk>
    known = len(served._tokenizer.words)
    again = served.predict(None, pd.DataFrame({"text": ["a dreadful film", *texts]}))
    assert np.allclose(again["proba_pos"].to_numpy()[1:], expected, atol=1e-6)  # ids reused, rows too
    assert len(served._tokenizer.words) == known  # a request's new words do not stay in the server
    from concurrent.futures import ThreadPoolExecutor

    requests = [f"a {word} film" for word in ("dreadful", "wonderful", "tedious", "sublime", "gripping")]
    alone = [served.predict(None, pd.DataFrame({"text": [text]}))["proba_pos"].iloc[0] for text in requests]
    with ThreadPoolExecutor(max_workers=5) as pool:  # the scoring server runs requests in threads
        together = list(pool.map(lambda t: served.predict(None, pd.DataFrame({"text": [t]})), requests * 4))
    assert np.allclose([frame["proba_pos"].iloc[0] for frame in together], alone * 4, atol=1e-6)
    assert len(served._tokenizer.words) == known
