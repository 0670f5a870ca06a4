"""Every registered family builds, runs forward, learns one step, and keeps its kind's contract."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import typing
from pathlib import Path
from typing import Any

import pytest
import torch

from dlops.models.registry import build_model, family_kinds, family_objectives, get_family, known_families
from dlops.params import TrainConfig

# Tiny widths and no dropout: the tests are about shapes and plumbing, and must stay well under 10 s.
SMALL: dict[str, dict[str, Any]] = {
    "mlp": {"hidden_sizes": [16, 8], "dropout": 0.0},
    "cnn": {"channels": [8, 16], "dropout": 0.0},
    "autoencoder": {"channels": [8, 16], "latent_dim": 4},
    "vae": {"channels": [8, 16], "latent_dim": 4},
    "gan": {"channels": [8, 16], "latent_dim": 8},
    "rnn": {"vocab_size": 20, "embedding_dim": 8, "hidden_size": 8, "dropout": 0.0},
    "transformer": {"vocab_size": 20, "d_model": 8, "num_heads": 2, "dim_feedforward": 16, "dropout": 0.0},
}
TEXT_LENGTH = 10
K = 3


def build(family: str, shape: tuple[int, ...], **overrides: Any) -> Any:
    return build_model(family, input_shape=shape, num_classes=K, config={**SMALL[family], **overrides})


def cases() -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for family in known_families():
        shapes: list[tuple[int, ...]] = [(1, 16, 16), (3, 8, 8)] if "images" in family_kinds(family) else []
        shapes += [(12,)] if "tabular" in family_kinds(family) else []
        out += [(family, shape) for shape in shapes]
        if "text" in family_kinds(family) and family != "mlp":  # mlp on text: tests/unit/test_text_models.py
            out.append((family, (TEXT_LENGTH,)))
    return out


def batch(shape: tuple[int, ...], n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if shape == (TEXT_LENGTH,):  # token ids, right-padded with 0, every row at least one token
        ids = torch.randint(2, 20, (n, TEXT_LENGTH), generator=g)
        lengths = torch.arange(n) % TEXT_LENGTH + 1
        return ids * (torch.arange(TEXT_LENGTH) < lengths[:, None]), torch.arange(n) % K
    return torch.rand(n, *shape, generator=g), torch.arange(n) % K


@pytest.mark.parametrize(("family", "shape"), cases())
def test_forward_shapes_finite_loss_and_one_step_learns(family: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build(family, shape)
    x, y = batch(shape)
    out, loss = model(x, y)
    assert loss is not None and torch.isfinite(loss) and not torch.isnan(out).any()
    kinds = family_objectives(family)
    if "classifier" in kinds:
        assert out.shape == (6, K)
    elif "anomaly" in kinds:
        assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 1.0
        assert model.anomaly_score(x).shape == (6,)
    else:  # the gan: discriminator logits
        assert out.shape == (6,)
    out_only, none = model(x)
    assert none is None and out_only.shape == out.shape

    if hasattr(model, "training_step"):
        logs = model.training_step(x, y, model.configure_optimizers(TrainConfig(lr=1e-3)))
        assert set(logs) == {"loss", "g_loss", "d_loss"}
        assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())
    else:  # one Adam step on a fixed batch (and fixed VAE noise) lowers that batch's loss
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        torch.manual_seed(1)
        _, before = model(x, y)
        optimizer.zero_grad()
        before.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        optimizer.step()
        torch.manual_seed(1)
        _, after = model(x, y)
        assert after < before
    if "generator" in kinds:
        images = model.sample(torch.tensor([0, 1, 2, 2]), torch.Generator().manual_seed(0))
        assert images.shape == (4, *shape) and images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.parametrize("family", [f for f in known_families() if "generator" in family_objectives(f)])
def test_sample_is_deterministic_with_a_seeded_generator(family: str) -> None:
    torch.manual_seed(0)
    model = build(family, (1, 8, 8))
    labels = torch.tensor([0, 1, 2])
    first = model.sample(labels, torch.Generator().manual_seed(7))
    assert torch.equal(first, model.sample(labels, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, model.sample(labels, torch.Generator().manual_seed(8)))
    assert model.training  # sampling does not leave the model in eval mode


def test_autoencoder_scores_noise_above_what_it_learned() -> None:
    torch.manual_seed(0)
    model = build("autoencoder", (1, 16, 16))
    ramp = torch.linspace(0, 1, 16)
    images = [ramp[None, :] * ramp[:, None], ramp[None, :].expand(16, 16)] * 4  # smooth patterns
    x = torch.stack(images)[:, None]  # (8, 1, 16, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        _, loss = model(x, torch.zeros(len(x)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    noise = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert model.anomaly_score(noise).min() > model.anomaly_score(x).max()
    assert model.training


def test_vae_anomaly_score_is_the_best_candidate_negative_elbo() -> None:
    torch.manual_seed(0)
    x, _ = batch((1, 8, 8), n=4)
    model = build("vae", (1, 8, 8), normal_classes=[1]).eval()
    per_sample = torch.stack([model(x[i : i + 1], torch.tensor([1]))[1] for i in range(4)])
    assert torch.allclose(model.anomaly_score(x), per_sample, rtol=1e-5)
    everyone = build("vae", (1, 8, 8)).eval()
    everyone.load_state_dict(model.state_dict())
    assert (everyone.anomaly_score(x) <= model.anomaly_score(x) + 1e-4).all()  # min over more classes


def test_gan_forward_is_deterministic_and_updates_nothing() -> None:
    torch.manual_seed(0)
    model = build("gan", (1, 16, 16))
    x, y = batch((1, 16, 16))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    _, first = model(x, y)
    _, second = model(x, y)
    assert torch.equal(first, second) and model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert model.early_stopping is False and model.is_classifier is False


def test_gan_training_is_reproducible() -> None:
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build("gan", (1, 8, 8))
        optimizers = model.configure_optimizers(TrainConfig(lr=1e-3))
        x, y = batch((1, 8, 8))
        for _ in range(2):
            model.training_step(x, y, optimizers)
        return model.state_dict()

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_cnn_features_and_is_classifier() -> None:
    model = build("cnn", (1, 16, 16))
    assert model.features(torch.rand(5, 1, 16, 16)).shape == (5, 16)
    assert model.is_classifier is True


def test_unknown_family_suggests_closest() -> None:
    with pytest.raises(ValueError, match="unknown model family 'mpl'.*Did you mean 'mlp'"):
        build_model("mpl", input_shape=(2,), num_classes=2, config={})


@pytest.mark.parametrize("family", known_families())
def test_the_registry_describes_the_family_config_dataclass(family: str) -> None:
    """params.yaml's `model:` keys are checked at load against the registry's torch-free description, so
    it must name every field of the family's config dataclass, with the same type."""
    described = get_family(family)
    module = importlib.import_module(described.module)
    (config_cls,) = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module.__name__
    ]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    assert fields == set(described.model_keys) | described.filled
    hints = typing.get_type_hints(config_cls)
    assert {key: hints[key] for key in described.model_keys} == described.model_keys


@pytest.mark.parametrize("family", known_families())
def test_a_family_imports_no_other_family(family: str) -> None:
    """dvc.yaml's train and search stages depend on the family's file, registry.py, blocks.py and subwords.py,
    so at run time a family file may import from no other dlops module (shared pieces live in
    dlops.models.blocks, the text families' embedding in dlops.models.subwords); imports under
    `if TYPE_CHECKING:` never run."""
    path = Path(importlib.import_module(get_family(family).module).__file__ or "")
    imported: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            pending += node.orelse
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        pending += ast.iter_child_nodes(node)
    own = {name for name in imported if name.split(".")[0] == "dlops"}
    assert own <= {"dlops.models.registry", "dlops.models.blocks", "dlops.models.subwords"}, own


@pytest.mark.parametrize(
    ("family", "config", "key"),
    [
        ("mlp", {"hidden_size": [4]}, "hidden_size"),
        ("mlp", {"dropout": 1.5}, "dropout"),
        ("cnn", {"chanels": [4]}, "chanels"),
        ("cnn", {"channels": [0]}, "model.channels"),
        ("cnn", {"dropout": "high"}, "model.dropout"),
        ("autoencoder", {"latent_dim": 0}, "model.latent_dim"),
        ("autoencoder", {"normal_classes": [5]}, "model.normal_classes"),
        ("vae", {"beta": -1.0}, "model.beta"),
        ("vae", {"normal_classes": [-1]}, "model.normal_classes"),
        ("gan", {"label_smoothing": 0.3}, "model.label_smoothing"),
        ("gan", {"ema": 0.9}, "ema"),
    ],
)
def test_bad_model_config_names_the_key(family: str, config: dict[str, Any], key: str) -> None:
    shape = (2,) if family == "mlp" else (1, 8, 8)
    with pytest.raises(ValueError, match=key):
        build_model(family, input_shape=shape, num_classes=K, config=config)


@pytest.mark.parametrize("family", [f for f in known_families() if family_kinds(f) == {"images"}])
def test_image_families_reject_flat_inputs(family: str) -> None:
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_model(family, input_shape=(12,), num_classes=K, config={})


@pytest.mark.parametrize(("family", "shape"), [("mlp", (4,)), ("cnn", (1, 8, 8))])
def test_soft_targets_and_weights(family: str, shape: tuple[int, ...]) -> None:
    model = build(family, shape).eval()
    x = torch.randn(6, *shape)
    soft = torch.tensor([[1.0, 0.0, 0.0]] * 6)
    _, soft_loss = model(x, soft)
    _, hard_loss = model(x, torch.zeros(6, dtype=torch.long))
    assert torch.allclose(soft_loss, hard_loss)
    _, weighted = model(x, torch.zeros(6, dtype=torch.long), torch.ones(6))
    assert torch.allclose(weighted, hard_loss)
    _, only_first = model(x, torch.zeros(6, dtype=torch.long), torch.tensor([1.0, 0, 0, 0, 0, 0]))
    assert torch.allclose(only_first, model(x[:1], torch.zeros(1, dtype=torch.long))[1])
