"""Every registered family builds, runs forward, and returns (logits, loss) of the right shape."""

from __future__ import annotations

import pytest
import torch

from dlops.models.registry import build_model, known_families

DEFAULT_CONFIG: dict[str, dict[str, object]] = {"mlp": {"hidden_sizes": [16, 8], "dropout": 0.1}}


@pytest.mark.parametrize("family", known_families())
def test_family_forward_shapes_and_finite_loss(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, input_dim=12, num_classes=3, config=DEFAULT_CONFIG.get(family, {}))
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 1, 0])
    logits, loss = model(x, y)
    assert logits.shape == (5, 3)
    assert loss is not None and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    logits_only, none = model(x)
    assert none is None and logits_only.shape == (5, 3)


def test_unknown_family_suggests_closest() -> None:
    with pytest.raises(ValueError, match="unknown model family 'mpl'.*Did you mean 'mlp'"):
        build_model("mpl", input_dim=2, num_classes=2, config={})


def test_bad_model_config_names_the_key() -> None:
    with pytest.raises(ValueError, match="hidden_size"):
        build_model("mlp", input_dim=2, num_classes=2, config={"hidden_size": [4]})
    with pytest.raises(ValueError, match="dropout"):
        build_model("mlp", input_dim=2, num_classes=2, config={"dropout": 1.5})


def test_soft_targets_and_weights() -> None:
    model = build_model("mlp", input_dim=4, num_classes=2, config={"hidden_sizes": [4]})
    x = torch.randn(6, 4)
    soft = torch.tensor([[1.0, 0.0]] * 6)
    _, soft_loss = model.eval()(x, soft)
    _, hard_loss = model(x, torch.zeros(6, dtype=torch.long))
    assert torch.allclose(soft_loss, hard_loss)
    _, weighted = model(x, torch.zeros(6, dtype=torch.long), torch.ones(6))
    assert torch.allclose(weighted, hard_loss)
