"""The training loop: loss falls, early stopping, resume equals an uninterrupted run, safe checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dlops.models.registry import build_model
from dlops.params import TrainConfig
from dlops.training.checkpoint import CheckpointError, load_model, load_safe, model_checkpoint, save_atomic
from dlops.training.loop import lr_factor, predict_proba, train


def _data(n: int = 600, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(np.int64)
    cut = int(0.8 * n)
    return {"train": (x[:cut], y[:cut]), "val": (x[cut:], y[cut:])}


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", input_shape=(6,), num_classes=2, config={"hidden_sizes": [16], "dropout": 0.1})


CFG = TrainConfig(epochs=8, batch_size=64, lr=0.01, patience=20, device="cpu", seed=3)


def test_loss_falls_and_model_learns() -> None:
    result = train(_model(), _data(), CFG)
    losses = [row["train/loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert result.history[-1]["val/accuracy"] > 0.9
    assert result.best_epoch >= 1


def test_a_batch_larger_than_the_data_trains_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    cfg = CFG.model_copy(update={"batch_size": 1024, "epochs": 2})
    result = train(_model(), _data(100), cfg)
    assert len(result.history) == 2
    assert "train.batch_size 1024 is larger than the 80 training rows" in caplog.text


def test_same_seed_same_weights() -> None:
    a = train(_model(), _data(), CFG).model.state_dict()
    b = train(_model(), _data(), CFG).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_interruption_equals_uninterrupted(tmp_path: Path) -> None:
    whole = train(_model(), _data(), CFG)
    resume = tmp_path / "last.pt"
    partial = train(_model(), _data(), CFG, resume_path=resume, fingerprint="f1", max_epochs=3)
    assert len(partial.history) == 3 and resume.exists()
    resumed = train(_model(seed=99), _data(), CFG, resume_path=resume, fingerprint="f1")
    assert resumed.resumed_from_epoch == 3
    assert resumed.history == whole.history
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_resume_ignores_checkpoint_of_other_params(tmp_path: Path) -> None:
    resume = tmp_path / "last.pt"
    train(_model(), _data(), CFG, resume_path=resume, fingerprint="old", max_epochs=2)
    fresh = train(_model(), _data(), CFG, resume_path=resume, fingerprint="new")
    assert fresh.resumed_from_epoch is None and len(fresh.history) == CFG.epochs


def test_corrupt_resume_checkpoint_is_not_loaded(tmp_path: Path) -> None:
    resume = tmp_path / "last.pt"
    train(_model(), _data(), CFG, resume_path=resume, fingerprint="f", max_epochs=2)
    resume.write_bytes(resume.read_bytes()[: resume.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_safe(resume)
    fresh = train(_model(), _data(), CFG, resume_path=resume, fingerprint="f")
    assert fresh.resumed_from_epoch is None


def test_early_stopping_restores_best_epoch() -> None:
    cfg = TrainConfig(epochs=60, batch_size=32, lr=0.05, patience=2, device="cpu", seed=1, min_delta=0.0)
    result = train(_model(), _data(n=200), cfg)
    assert result.stopped_early and len(result.history) < 60
    best = min(result.history, key=lambda row: row["val/loss"])
    assert result.best_epoch == best["epoch"]


def test_without_early_stopping_every_epoch_runs_and_the_last_is_kept() -> None:
    settings = {"epochs": 12, "batch_size": 32, "lr": 0.05, "patience": 1, "device": "cpu", "seed": 1}
    cfg = TrainConfig(**settings, early_stopping=False)
    model = _model()
    result = train(model, _data(n=200), cfg)
    assert len(result.history) == 12 and result.best_epoch == 12 and not result.stopped_early
    assert result.history[-1]["val/loss"] > min(row["val/loss"] for row in result.history)  # not the best
    last = {k: v.clone() for k, v in model.state_dict().items()}
    again = _model()
    train(again, _data(n=200), cfg)
    assert all(torch.equal(last[k], v) for k, v in again.state_dict().items())


def test_early_stopping_can_follow_validation_accuracy() -> None:
    cfg = TrainConfig(
        epochs=60,
        batch_size=32,
        lr=0.05,
        patience=3,
        device="cpu",
        seed=1,
        min_delta=0.0,
        monitor="val_accuracy",
    )
    result = train(_model(), _data(n=200), cfg)
    accuracies = [row["val/accuracy"] for row in result.history]
    best = accuracies.index(max(accuracies))  # the first epoch that reached the best accuracy
    assert result.best_epoch == best + 1
    assert result.stopped_early and len(result.history) == best + 1 + 3  # patience 3 after the best


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(epochs=10, warmup_epochs=2)
    factors = [lr_factor(e, cfg) for e in range(10)]
    assert factors[0] < factors[1] < factors[2] == pytest.approx(1.0)
    assert factors[-1] < 0.2 and all(a >= b for a, b in zip(factors[2:], factors[3:], strict=False))


def test_checkpoint_round_trip_and_pickle_refused(tmp_path: Path) -> None:
    result = train(_model(), _data(), TrainConfig(epochs=2, device="cpu"))
    path = tmp_path / "model.pt"
    save_atomic(
        model_checkpoint(
            model=result.model,
            pair="t-mlp",
            task="t",
            family="mlp",
            model_config={"hidden_sizes": [16], "dropout": 0.1},
            input_shape=(6,),
            classes=["no", "yes"],
            train_config={},
            best_epoch=result.best_epoch,
        ),
        path,
    )
    model, meta = load_model(path)
    x = _data()["val"][0]
    assert np.allclose(predict_proba(model, x), predict_proba(result.model, x))
    assert meta["classes"] == ["no", "yes"] and "state_dict" not in meta

    evil = tmp_path / "evil.pt"
    torch.save({"format": "dlops.checkpoint/1", "payload": _Evil()}, evil)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_safe(evil)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


class _Reconstructor(torch.nn.Module):
    """A non-classifier: forward returns (reconstruction, MSE); the loop must not compute accuracy."""

    is_classifier = False

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.Linear(3, 6))

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None, weights: object = None) -> tuple:
        out = self.net(x)
        return out, (None if targets is None else torch.nn.functional.mse_loss(out, x))


class _TwoPlayer(_Reconstructor):
    """Owns its optimisation like a GAN: two optimizers, its own step, no early stopping."""

    early_stopping = False

    def configure_optimizers(self, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        first, second = self.net
        return [
            torch.optim.SGD(first.parameters(), lr=cfg.lr),
            torch.optim.SGD(second.parameters(), lr=cfg.lr),
        ]

    def training_step(self, x: torch.Tensor, y: torch.Tensor, optimizers: list) -> dict[str, float]:
        losses = {}
        for name, opt in zip(("a_loss", "b_loss"), optimizers, strict=True):
            _, loss = self(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[name] = float(loss.detach())
        return {"loss": losses["a_loss"] + losses["b_loss"], **losses}


def test_non_classifiers_train_on_their_own_loss_without_accuracy() -> None:
    torch.manual_seed(0)
    result = train(_Reconstructor(), _data(), CFG)
    assert "val/accuracy" not in result.history[0]
    assert result.history[-1]["val/loss"] < result.history[0]["val/loss"]


def test_a_family_that_steps_itself_runs_every_epoch_and_logs_each_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.05, patience=1, device="cpu", seed=3)
    result = train(_TwoPlayer(), _data(), cfg, resume_path=tmp_path / "last.pt", fingerprint="f")
    assert len(result.history) == 4 and result.best_epoch == 4  # no early stop, last weights kept
    assert {"train/batch_a_loss", "train/batch_b_loss"} <= set(result.history[0])
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]
    assert len(load_safe(tmp_path / "last.pt")["optimizers"]) == 2


def _token_ids(n: int, seed: int = 0) -> np.ndarray:
    """Right-padded token ids of lengths 1..40 (0 = padding)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 41, size=n)
    x = np.zeros((n, 40), dtype=np.int64)
    for i, length in enumerate(lengths):
        x[i, :length] = rng.integers(2, 50, size=length)
    return x


def test_length_bucketing_batches_texts_of_similar_length_and_covers_every_row_once() -> None:
    from dlops.training.device import Split
    from dlops.training.loop import batch_order

    x = _token_ids(1000)
    data = Split(x, np.zeros(1000, dtype=np.int64), torch.device("cpu"))
    cfg = TrainConfig(batch_size=10)
    bucketed = batch_order(data, cfg, torch.Generator().manual_seed(0))
    again = batch_order(data, cfg, torch.Generator().manual_seed(0))
    unbucketed = cfg.model_copy(update={"length_bucketing": False})
    plain = batch_order(data, unbucketed, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(bucketed).tolist()) == list(range(1000))  # every row once
    assert all(torch.equal(a, b) for a, b in zip(bucketed, again, strict=True))  # seeded
    lengths = (x != 0).sum(1)

    def mean_spread(batches: list[torch.Tensor]) -> float:
        return float(np.mean([np.ptp(lengths[b.numpy()]) for b in batches]))

    assert mean_spread(bucketed) <= 2 and mean_spread(plain) > 20  # 1..40 tokens: ~35 apart in a random batch
    features = Split(np.zeros((30, 4), dtype=np.float32), np.zeros(30, dtype=np.int64), torch.device("cpu"))
    assert torch.equal(torch.cat(batch_order(features, cfg, torch.Generator().manual_seed(0))),
                       torch.randperm(30, generator=torch.Generator().manual_seed(0)))  # fmt: skip


def test_text_predictions_come_back_in_row_order() -> None:
    torch.manual_seed(0)
    model = build_model(
        "transformer", input_shape=(40,), num_classes=2,
        config={"vocab_size": 50, "d_model": 16, "num_heads": 2, "num_layers": 1, "dim_feedforward": 16,
                "max_length": 40, "pooling": "mean"},
    )  # fmt: skip
    x = _token_ids(300, seed=1)
    together = predict_proba(model, x, batch_size=64)  # sorted by length inside, unsorted back
    one_by_one = np.concatenate([predict_proba(model, x[i : i + 1]) for i in range(0, 300, 37)])
    np.testing.assert_allclose(together[::37], one_by_one, atol=1e-5)


class _Splits:
    """A kind whose split i holds rows whose features, label and group all encode the row number."""

    def load_split(self, p: object, task: str, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
        n = 100 if split == "train" else 30
        rows = np.arange(n)
        return np.stack([rows, -rows], axis=1).astype(np.float32), rows % 2, {"sex": rows}


def test_max_rows_is_one_seeded_sample_of_the_training_split_and_leaves_the_others_whole() -> None:
    from types import SimpleNamespace

    from dlops.pairs.setup import model_split

    def split(name: str, **train: int) -> tuple[np.ndarray, np.ndarray, dict]:
        entry = SimpleNamespace(task="t", train=TrainConfig(**train))
        return model_split(Path("."), _Splits(), entry, name)  # type: ignore[arg-type]

    x, y, groups = split("train", max_rows=10, seed=3)
    rows = groups["sex"]
    assert len(rows) == 10 and np.all(np.diff(rows) > 0)  # distinct, in their original order
    assert np.array_equal(x[:, 0], rows) and np.array_equal(y, rows % 2)  # the same rows everywhere
    assert np.array_equal(split("train", max_rows=10, seed=3)[2]["sex"], rows)  # training = evaluation
    assert not np.array_equal(split("train", max_rows=10, seed=4)[2]["sex"], rows)
    assert len(split("val", max_rows=10)[1]) == 30 and len(split("train", max_rows=500)[1]) == 100
