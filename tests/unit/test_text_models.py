"""Text families (rnn, transformer, bag-of-words mlp): shapes, padding invariance, learning, word order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from dlops.models.mlp import build_mlp
from dlops.models.rnn import build_rnn
from dlops.models.transformer import build_transformer

V, L, K = 10, 8, 3
A, B = 2, 3  # the order task: is token A before token B?

TWO_LAYERS = {"d_model": 16, "num_heads": 2, "num_layers": 2, "dim_feedforward": 32, "dropout": 0.0}
# Tiny widths and no dropout: these tests are about plumbing and must stay fast.
CASES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "rnn-lstm-last": (build_rnn, {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0}),
    "rnn-gru-mean": (
        build_rnn,
        {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0, "cell": "gru", "pooling": "mean"},
    ),
    "rnn-gru-max": (  # each feature's strongest step, padding excluded
        build_rnn,
        {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0, "cell": "gru", "pooling": "max"},
    ),
    "transformer-cls": (
        build_transformer,
        {"d_model": 16, "num_heads": 2, "num_layers": 1, "dim_feedforward": 32, "dropout": 0.0},
    ),
    "transformer-mean": (build_transformer, {**TWO_LAYERS, "pooling": "mean"}),
    # positions as ALiBi's distance bias, max pooling
    "transformer-alibi-max": (build_transformer, {**TWO_LAYERS, "pooling": "max", "positions": "alibi"}),
    # positions from a convolution over neighbouring tokens (wav2vec 2.0, CPVT)
    "transformer-conv": (build_transformer, {**TWO_LAYERS, "positions": "conv"}),
    "mlp-bow": (build_mlp, {"hidden_sizes": [16], "dropout": 0.0}),
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: intra-op threads only add OpenMP sync cost (10x slower on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(case: str, num_classes: int = K, **overrides: Any) -> Any:
    builder, config = CASES[case]
    torch.manual_seed(0)
    return builder(input_shape=(L,), num_classes=num_classes, **{"vocab_size": V, **config, **overrides})


def token_batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (n, L) with lengths 1..L, unknown id 1 included; labels cycle through K."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, V, (n, L), generator=g)
    lengths = torch.arange(n) % L + 1
    x[torch.arange(L)[None, :] >= lengths[:, None]] = 0
    return x, torch.arange(n) % K


def order_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random filler with one A and one B each; label 1 iff A comes first. Both labels share one bag."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, L + 1, (n,), generator=g)
    x = torch.randint(B + 1, V, (n, L), generator=g)
    y = torch.zeros(n, dtype=torch.long)
    for i, n_i in enumerate(lengths.tolist()):
        a, b = torch.randperm(n_i, generator=g)[:2].tolist()
        x[i, a], x[i, b], x[i, n_i:] = A, B, 0
        y[i] = int(a < b)
    return x, y


@pytest.mark.parametrize("case", CASES)
def test_forward_shapes_no_nan_and_one_step_lowers_loss(case: str) -> None:
    model = build(case)
    x, y = token_batch()
    logits, loss = model(x, y)
    assert logits.shape == (6, K) and not torch.isnan(logits).any()
    assert loss is not None and torch.isfinite(loss)
    assert model(x)[1] is None
    assert getattr(model, "is_classifier", True) is True
    if not case.startswith("mlp"):
        assert isinstance(model.embedding, nn.Embedding) and model.embedding.padding_idx == 0

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    optimizer.zero_grad()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    optimizer.step()
    assert model(x, y)[1] < loss


@pytest.mark.parametrize("case", CASES)
def test_appending_padding_does_not_change_logits(case: str) -> None:
    model = build(case).eval()
    x, _ = token_batch()
    longer = torch.cat([x, torch.zeros(len(x), 5, dtype=x.dtype)], dim=1)  # (B, L + 5)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], model(longer)[0], atol=1e-5)
        # and a row's logits do not depend on the batch it is in (its neighbours' lengths)
        assert torch.allclose(model(x)[0][:1], model(x[:1])[0], atol=1e-5)


@pytest.mark.parametrize("case", ["rnn-lstm-last", "transformer-cls"])
def test_soft_targets_and_weights_match_the_mlp_convention(case: str) -> None:
    model = build(case).eval()
    x, y = token_batch()
    _, hard = model(x, y)
    _, soft = model(x, nn.functional.one_hot(y, K).float())
    assert torch.allclose(hard, soft, atol=1e-6)
    weights = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert torch.allclose(model(x, y, weights)[1], model(x[:1], y[:1])[1], atol=1e-5)


def test_transformer_is_deterministic_under_manual_seed() -> None:
    x, y = token_batch()
    first, second = build("transformer-cls", dropout=0.1), build("transformer-cls", dropout=0.1)
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())
    torch.manual_seed(3)
    out_a = first(x, y)[1]
    torch.manual_seed(3)
    assert torch.equal(out_a, second(x, y)[1])


@pytest.mark.parametrize(
    ("case", "steps", "low", "high"),
    [
        ("rnn-lstm-last", 30, 0.9, 1.0),
        ("rnn-gru-mean", 60, 0.9, 1.0),
        ("rnn-gru-max", 60, 0.9, 1.0),
        ("transformer-cls", 60, 0.9, 1.0),
        ("transformer-mean", 60, 0.9, 1.0),
        ("mlp-bow", 60, 0.0, 0.65),  # same bag for both labels: chance
    ],
)
def test_word_order_task(case: str, steps: int, low: float, high: float) -> None:
    x, y = order_task(1024, seed=0)
    x_test, y_test = order_task(512, seed=1)
    model = build(case, num_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        _, loss = model(x[idx], y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test)[0].argmax(1) == y_test).float().mean().item()
    print(f"{case}: {accuracy:.3f}")
    assert low <= accuracy <= high, accuracy


@pytest.mark.parametrize(
    ("case", "overrides", "key"),
    [
        ("rnn-lstm-last", {"cell": "rnn"}, "model.cell"),
        ("rnn-lstm-last", {"pooling": "sum"}, "model.pooling"),
        ("rnn-lstm-last", {"hidden_size": 0}, "model.hidden_size"),
        ("rnn-lstm-last", {"vocab_size": None}, "model.vocab_size"),
        ("transformer-cls", {"num_heads": 3}, "model.d_model"),
        ("transformer-cls", {"dropout": 1.0}, "model.dropout"),
        ("transformer-cls", {"max_length": 4}, "model.max_length"),
        ("transformer-cls", {"positions": "rope"}, "model.positions"),
        ("transformer-cls", {"pooling": "sum"}, "model.pooling"),
        ("transformer-cls", {"heads": 2}, "valid keys: vocab_size, d_model"),
        ("mlp-bow", {"vocab_size": 1}, "model.vocab_size"),
    ],
)
def test_bad_config_names_the_key(case: str, overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        build(case, **overrides)


def test_bag_of_words_is_normalized_counts_ignoring_padding() -> None:
    from dlops.models.mlp import bag_of_words

    bags = bag_of_words(torch.tensor([[2, 2, 1, 0], [3, 0, 0, 0]]), vocab_size=4)
    assert torch.allclose(bags, torch.tensor([[0, 1 / 3, 2 / 3, 0], [0, 0, 0, 1.0]]))
