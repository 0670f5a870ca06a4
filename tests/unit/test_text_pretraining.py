"""Masked-token pretraining of the text encoders (evaluation/text_pretraining.py): it learns what the
context predicts, cannot copy the hidden token, and hands every tensor but the head to a classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlops.evaluation.text_pretraining import MaskedTokens, body_loader, masked_accuracy, train_masked_encoder
from dlops.models.registry import build_model
from dlops.params import TrainConfig

VOCAB, LENGTH = 40, 24
CONFIGS = {
    "rnn": {"cell": "gru", "embedding_dim": 32, "hidden_size": 32, "pooling": "mean", "dropout": 0.0},
    "transformer": {
        "d_model": 32, "num_heads": 2, "num_layers": 2, "dim_feedforward": 64, "dropout": 0.0,
        "max_length": LENGTH, "pooling": "mean",
    },
}  # fmt: skip


def counting_texts(n: int, seed: int) -> np.ndarray:
    """Texts that count up from a random start (2..VOCAB-1, wrapping): every hidden token follows from
    its neighbours. Lengths 6..LENGTH, right-padded."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, LENGTH), dtype=np.int64)
    for i in range(n):
        length, start = rng.integers(6, LENGTH + 1), rng.integers(0, VOCAB - 2)
        x[i, :length] = 2 + (start + np.arange(length)) % (VOCAB - 2)
    return x


def random_texts(n: int, seed: int) -> np.ndarray:
    """Independent uniform tokens: nothing but the token itself tells what it is."""
    return np.random.default_rng(seed).integers(2, VOCAB, size=(n, LENGTH)).astype(np.int64)


def pretrain(family: str, texts: np.ndarray) -> tuple[dict, dict]:
    labels = np.zeros(len(texts), dtype=np.int64)  # unused by the objective
    data = {"train": (texts[:1600], labels[:1600]), "val": (texts[1600:], labels[1600:])}
    cfg = TrainConfig(epochs=6, batch_size=64, lr=0.005, weight_decay=0.0, patience=6, augment=False)
    config = {**CONFIGS[family], "vocab_size": VOCAB}
    return train_masked_encoder(family, config, cfg, data, 2, (LENGTH,), mask_fraction=0.15)


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_masked_tokens_are_learned_from_context(family: str) -> None:
    tensors, summary = pretrain(family, counting_texts(2000, seed=0))
    assert summary["objective"] == "masked-tokens" and summary["epochs_run"] == 6
    assert summary["val_masked_token_accuracy"] > 0.5  # chance is 1/38
    assert tensors and not any(key.startswith("head.") for key in tensors)
    assert "embedding.weight" in tensors


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_the_hidden_token_cannot_be_copied(family: str) -> None:
    """On independent random tokens the context says nothing: a model that saw the hidden token (a
    bidirectional RNN reading it, attention to it) would name it; these stay near chance (1/38)."""
    _, summary = pretrain(family, random_texts(2000, seed=1))
    assert summary["val_masked_token_accuracy"] < 0.1


def test_the_evaluation_mask_is_fixed_and_only_hides_known_tokens() -> None:
    torch.manual_seed(0)
    body = build_model(
        "rnn", input_shape=(LENGTH,), num_classes=2, config={**CONFIGS["rnn"], "vocab_size": VOCAB}
    )
    model = MaskedTokens(body, VOCAB, mask_fraction=0.5).eval()
    x = torch.as_tensor(counting_texts(50, seed=2))
    x[:, 3] = 1  # unknown tokens are never targets
    first, loss = model(x)
    second, _ = model(x)
    assert torch.equal(first, second) and torch.isfinite(loss)
    known = int((x > 1).sum())
    assert 0.35 * known < len(first) < 0.65 * known
    assert 0.0 <= masked_accuracy(model, x.numpy()) <= 1.0


def test_the_pretrained_body_goes_into_a_fresh_classifier_head_untouched() -> None:
    config = {**CONFIGS["transformer"], "vocab_size": VOCAB}
    torch.manual_seed(0)
    pretrained = build_model("transformer", input_shape=(LENGTH,), num_classes=2, config=config)
    tensors = {k: v + 1.0 for k, v in pretrained.state_dict().items() if not k.startswith("head.")}
    torch.manual_seed(1)
    fresh = build_model("transformer", input_shape=(LENGTH,), num_classes=2, config=config)
    head = fresh.head.weight.detach().clone()
    loaded = body_loader(tensors)(fresh)
    assert torch.equal(fresh.embedding.weight, tensors["embedding.weight"])
    assert torch.equal(fresh.head.weight, head)
    assert "embedding.weight" in loaded["loaded"]
    wider = build_model(
        "transformer", input_shape=(LENGTH,), num_classes=2, config={**config, "num_layers": 3}
    )
    with pytest.raises(ValueError, match="does not fit the classifier"):
        body_loader(tensors)(wider)


def test_every_seed_s_pretrained_arm_starts_from_the_encoder() -> None:
    from dlops.evaluation.pretraining import run_study
    from dlops.params import PretrainingConfig

    texts = counting_texts(300, seed=3)
    labels = (texts[:, 0] % 2).astype(np.int64)
    data = {name: (texts[i::3], labels[i::3]) for i, name in enumerate(("train", "val", "test"))}
    calls: list[int] = []

    def load(model: torch.nn.Module) -> dict:
        calls.append(1)
        return {"loaded": ["embedding.weight"], "mapped": {}, "unused": []}

    study = PretrainingConfig(task="text", classifier="text-rnn", label_fraction=0.5, seeds=[0, 1, 2])
    report = run_study(
        study, family="rnn", config={**CONFIGS["rnn"], "vocab_size": VOCAB}, load_encoder=load,
        train=TrainConfig(epochs=1, batch_size=32, augment=False), data=data, num_classes=2,
        input_shape=(LENGTH,),
    )  # fmt: skip
    assert len(calls) == 3 and set(report["pretrained"]["per_seed"]) == {"0", "1", "2"}
