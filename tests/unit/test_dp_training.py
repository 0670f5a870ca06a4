"""DP-SGD in the training loop (privacy/dp.py): the budget spent, determinism, resume, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.unit.test_training import _data  # the same 600-row linear task as the plain loop's tests

from dlops.models.registry import build_model
from dlops.params import PrivacyConfig, TrainConfig
from dlops.privacy.dp import PrivacyError, privacy_metrics
from dlops.training.loop import train


def _model(batch_norm: bool = False, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = {"hidden_sizes": [16], "dropout": 0.0, "batch_norm": batch_norm}
    return build_model("mlp", input_shape=(6,), num_classes=2, config=config)


PRIVATE = PrivacyConfig(target_epsilon=3.0, delta=1e-4, max_grad_norm=1.0)
CFG = TrainConfig(epochs=6, batch_size=64, lr=0.02, patience=20, device="cpu", seed=3, privacy=PRIVATE)


def test_dp_sgd_learns_within_its_target_epsilon_and_logs_it_every_epoch() -> None:
    result = train(_model(), _data(), CFG)
    spent = [row["privacy/epsilon"] for row in result.history]
    assert spent == sorted(spent) and spent[0] > 0  # the budget only grows
    assert result.privacy is not None
    assert result.privacy["epsilon"] == pytest.approx(spent[-1], abs=1e-6)
    assert 2.5 < result.privacy["epsilon"] <= 3.0 + 1e-3  # the noise was chosen for the target
    assert result.privacy["steps"] == 6 * 8  # 480 rows in batches of 64: 8 steps an epoch
    assert result.privacy["delta"] == 1e-4 and result.privacy["noise_multiplier"] > 0.5
    assert result.history[-1]["val/accuracy"] > 0.8
    assert not any(hasattr(p, "grad_sample") for p in result.model.parameters())  # hooks gone
    metrics = privacy_metrics(result.privacy)
    assert metrics["privacy/epsilon"] == result.privacy["epsilon"]
    assert set(metrics) == {
        f"privacy/{k}" for k in ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "steps")
    }


def test_more_noise_spends_less_and_a_given_noise_multiplier_is_used_as_is() -> None:
    noisy = CFG.model_copy(update={"privacy": PrivacyConfig(noise_multiplier=4.0, delta=1e-4)})
    result = train(_model(), _data(), noisy)
    assert result.privacy is not None and result.privacy["noise_multiplier"] == 4.0
    assert result.privacy["epsilon"] < 1.0


def test_dp_training_is_deterministic_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    whole = train(_model(), _data(), CFG)
    again = train(_model(), _data(), CFG)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
    resume = tmp_path / "last.pt"
    train(_model(), _data(), CFG, resume_path=resume, fingerprint="f", max_epochs=2)
    resumed = train(_model(seed=9), _data(), CFG, resume_path=resume, fingerprint="f")
    assert resumed.resumed_from_epoch == 2
    assert resumed.history == whole.history
    assert resumed.privacy == whole.privacy
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_noise_changes_the_weights_against_ordinary_training() -> None:
    plain = train(_model(), _data(), CFG.model_copy(update={"privacy": None}))
    private = train(_model(), _data(), CFG)
    assert plain.privacy is None and "privacy/epsilon" not in plain.history[-1]
    assert not torch.equal(plain.model.state_dict()["head.weight"], private.model.state_dict()["head.weight"])


def test_batch_norm_is_refused_naming_the_family_the_layer_and_the_fix() -> None:
    with pytest.raises(PrivacyError, match=r"family 'mlp'.*BatchNorm.*model.batch_norm: false"):
        train(_model(batch_norm=True), _data(), CFG)


def test_an_lstm_is_refused_naming_the_family() -> None:
    model = build_model("rnn", input_shape=(12,), num_classes=2, config={"cell": "lstm", "vocab_size": 50})
    ids = np.random.default_rng(0).integers(1, 50, size=(40, 12))
    data = {"train": (ids, np.arange(40) % 2), "val": (ids[:8], np.arange(8) % 2)}
    with pytest.raises(PrivacyError, match=r"family 'rnn'.*LSTM"):
        train(model, data, CFG)


def test_weights_augmentation_and_compile_are_refused_by_their_keys() -> None:
    weights = np.ones(480, dtype=np.float32)
    with pytest.raises(PrivacyError, match="train.reweigh"):
        train(_model(), _data(), CFG, sample_weights=weights)
    with pytest.raises(PrivacyError, match="train.augment"):
        train(_model(), _data(), CFG, augment=lambda x, y, g: (x, y))
    with pytest.raises(PrivacyError, match="train.compile"):
        train(_model(), _data(), CFG.model_copy(update={"compile": True}))


def test_privacy_params_need_exactly_one_noise_source() -> None:
    with pytest.raises(ValueError, match="exactly one of target_epsilon and noise_multiplier"):
        PrivacyConfig(delta=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        PrivacyConfig(target_epsilon=1.0, noise_multiplier=1.0)


def test_max_epsilon_passes_a_budget_within_it_and_fails_a_model_without_one() -> None:
    from dlops.gates import decide
    from dlops.params import GatesConfig

    gates = GatesConfig(primary_metric="accuracy", min_primary=0.5, max_epsilon=3.0)
    within = decide({"test/accuracy": 0.9, "privacy/epsilon": 2.2}, gates, None)
    over = decide({"test/accuracy": 0.9, "privacy/epsilon": 3.5}, gates, None)
    without = decide({"test/accuracy": 0.9}, gates, None)
    assert within.promote and not over.promote and not without.promote
    assert [c.name for c in over.failed] == ["max_epsilon"] and [c.value for c in without.failed] == [None]


def test_the_checkpoint_and_the_registered_version_carry_the_budget(tmp_path: Path) -> None:
    from dlops.privacy.dp import run_tags
    from dlops.training.checkpoint import load_model, model_checkpoint, save_atomic

    result = train(_model(), _data(), CFG.model_copy(update={"epochs": 2}))
    ckpt = model_checkpoint(
        model=result.model,
        pair="p",
        task="t",
        family="mlp",
        model_config={"hidden_sizes": [16], "dropout": 0.0, "batch_norm": False},
        input_shape=(6,),
        classes=["0", "1"],
        train_config=CFG.model_dump(mode="json"),
        best_epoch=result.best_epoch,
        privacy=result.privacy,
    )
    save_atomic(ckpt, tmp_path / "model.pt")
    _, meta = load_model(tmp_path / "model.pt")
    assert meta["privacy"] == result.privacy and meta["privacy"]["steps"] == 16
    tags = run_tags(meta["privacy"])
    assert tags["privacy"] == "dp-sgd" and float(tags["privacy.epsilon"]) == result.privacy["epsilon"]
    assert tags["privacy.delta"] == "0.0001"
    assert run_tags(None) == {"privacy": "none"}


def test_the_dp_twin_of_a_memorising_network_passes_the_membership_gate_it_fails() -> None:
    from dlops.gates import decide
    from dlops.params import GatesConfig
    from dlops.privacy import membership
    from dlops.training.loop import predict_proba

    def noisy(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # 20% flipped labels to memorise
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(rows, 6)).astype(np.float32)
        y = (x[:, :2].sum(axis=1) > 0).astype(np.int64)
        return x, np.where(rng.random(rows) < 0.2, 1 - y, y)

    (x, y), (x_test, y_test) = noisy(200, 0), noisy(200, 1)
    data = {"train": (x, y), "val": (x, y)}  # the kept epoch is the one that fits the training rows best
    memorise = TrainConfig(
        epochs=300, batch_size=50, lr=0.01, weight_decay=0.0, scheduler="none", patience=1000,
        grad_clip=0.0, device="cpu", seed=0, augment=False,
    )  # fmt: skip
    private = memorise.model_copy(update={"privacy": PrivacyConfig(target_epsilon=1.0, delta=1e-3)})
    audits = []
    for cfg in (memorise, private):
        torch.manual_seed(0)
        config = {"hidden_sizes": [256], "dropout": 0.0, "batch_norm": False}
        model = train(build_model("mlp", input_shape=(6,), num_classes=2, config=config), data, cfg).model
        train_proba, test_proba = predict_proba(model, x), predict_proba(model, x_test)
        audits.append(membership.audit(train_proba, y, test_proba, y_test, seed=0))
    over, twin = (audit["privacy/membership_auc"] for audit in audits)
    assert over > 0.62 and abs(twin - 0.5) < 0.05, (over, twin)  # measured 0.639 and 0.531
    gates = GatesConfig(min_primary=0.0, max_membership_auc=0.6)
    verdicts = [decide({"test/balanced_accuracy": 0.6, **audit}, gates, None).verdict for audit in audits]
    assert verdicts == ["rejected", "promoted"]
