"""The forecasters of the mlp, rnn and transformer families: shapes, a loss that skips masked steps,
determinism, and each one learning a noisy sine better than the last-value forecast."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from dlops.models.registry import build_model
from dlops.params import TrainConfig
from dlops.training.loop import train

SMALL: dict[str, dict[str, Any]] = {
    "mlp": {"hidden_sizes": [32], "dropout": 0.0},
    "rnn": {"cell": "gru", "embedding_dim": 8, "hidden_size": 16, "bidirectional": False, "dropout": 0.0},
    "transformer": {"d_model": 16, "num_heads": 2, "num_layers": 1, "dim_feedforward": 32, "dropout": 0.0,
                    "max_length": 24, "pooling": "mean"},
}  # fmt: skip
LOOKBACK, HORIZON = 24, 6


def build(family: str, features: int = 1, **overrides: Any) -> Any:
    config = {**SMALL[family], "horizon": HORIZON, **overrides}
    return build_model(family, input_shape=(LOOKBACK, features), num_classes=0, config=config)


def sine_windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of a period-12 sine with noise: x (n, 24, 1), y (n, 6)."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, 1000, n)[:, None]
    steps = start + np.arange(LOOKBACK + HORIZON)
    values = np.sin(2 * np.pi * steps / 12) + 0.05 * rng.standard_normal(steps.shape)
    return values[:, :LOOKBACK, None].astype(np.float32), values[:, LOOKBACK:].astype(np.float32)


@pytest.mark.parametrize("family", sorted(SMALL))
def test_shape_loss_and_masked_targets(family: str) -> None:
    torch.manual_seed(0)
    model = build(family, features=2)
    assert model.is_classifier is False
    x = torch.randn(5, LOOKBACK, 2)
    targets = torch.randn(5, HORIZON)
    pred, loss = model(x, targets)
    assert pred.shape == (5, HORIZON) and loss is not None and torch.isfinite(loss)
    assert model(x)[1] is None
    masked = targets.clone()
    masked[0, 2] = float("nan")
    changed = masked.clone()
    changed[0, 2] = float("nan")
    _, loss_a = model(x, masked)
    other = masked.clone()
    other[1, 0] = targets[1, 0]  # same finite values
    _, loss_b = model(x, other)
    assert torch.isfinite(loss_a) and loss_a == loss_b
    loss_a.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    _, nothing = model(x, torch.full((5, HORIZON), float("nan")))
    assert nothing == 0.0


@pytest.mark.parametrize("family", sorted(SMALL))
def test_same_seed_same_forecasts(family: str) -> None:
    x = torch.randn(3, LOOKBACK, 1)
    torch.manual_seed(1)
    first = build(family)
    torch.manual_seed(1)
    second = build(family)
    first.eval()
    second.eval()
    assert torch.equal(first(x)[0], second(x)[0])


@pytest.mark.parametrize("family", sorted(SMALL))
def test_each_forecaster_beats_the_last_value_on_a_sine(family: str) -> None:
    torch.manual_seed(0)
    model = build(family)
    data = {"train": sine_windows(400, 0), "val": sine_windows(100, 1)}
    cfg = TrainConfig(epochs=15, batch_size=32, lr=0.01, patience=15, seed=0, warmup_epochs=0)
    result = train(model, data, cfg)
    x, y = sine_windows(200, 2)
    with torch.no_grad():
        pred = result.model(torch.from_numpy(x))[0].numpy()
    model_mse = float(((pred - y) ** 2).mean())
    naive_mse = float(((x[:, -1, :] - y) ** 2).mean())
    assert model_mse < 0.5 * naive_mse, (model_mse, naive_mse)


def test_bad_forecaster_settings_are_named() -> None:
    with pytest.raises(ValueError, match="model.max_length=24 is below the lookback 30"):
        build_model(
            "transformer", input_shape=(30, 1), num_classes=0, config={**SMALL["transformer"], "horizon": 2}
        )
    with pytest.raises(ValueError, match="model.horizon must be a positive integer"):
        build("mlp", horizon=0)
    with pytest.raises(ValueError, match="windows shaped"):
        build_model("rnn", input_shape=(24,), num_classes=0, config={**SMALL["rnn"], "horizon": 2})
    with pytest.raises(ValueError, match="not token ids"):
        build("rnn", vocab_size=20)


def test_a_forecaster_resumed_after_an_interruption_ends_as_an_uninterrupted_one(tmp_path: Any) -> None:
    from dlops.kinds.timeseries.augment import make_series_augment
    from dlops.params.tasks_timeseries import SeriesAugmentConfig

    data = {"train": sine_windows(120, 0), "val": sine_windows(40, 1)}
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.01, patience=4, seed=0)
    augment = make_series_augment(SeriesAugmentConfig(jitter_std=0.05, scale_std=0.1))

    def model() -> Any:
        torch.manual_seed(0)
        return build("rnn")

    whole = train(model(), data, cfg, augment=augment)
    resume = tmp_path / "last.pt"
    train(model(), data, cfg, augment=augment, resume_path=resume, fingerprint="f", max_epochs=2)
    resumed = train(model(), data, cfg, augment=augment, resume_path=resume, fingerprint="f")
    assert resumed.resumed_from_epoch == 2 and resumed.history == whole.history
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_rnn_forecaster_pools_its_steps_as_configured(pooling: str) -> None:
    torch.manual_seed(0)
    model = build("rnn", pooling=pooling).eval()
    x = torch.randn(4, LOOKBACK, 1)
    out, _ = model.rnn(model.project(x))
    features = {"last": out[:, -1], "mean": out.mean(1), "max": out.amax(1)}[pooling]  # one direction
    with torch.no_grad():
        expected = model.head(features) + x[:, -1, 0:1]
        assert torch.allclose(model(x)[0], expected, atol=1e-6)
