"""The membership-inference audit: the attacks' scores, AUC, TPR at 1% FPR, balanced sampling, and an
over-fitted network that the `max_membership_auc` gate rejects while its regularised twin passes."""

from __future__ import annotations

import numpy as np
import pytest

from dlops.gates import decide
from dlops.objectives.classifier import _membership
from dlops.params import GatesConfig
from dlops.privacy import membership


def _auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    whole = np.arange(len(members))[None], np.arange(len(nonmembers))[None]
    return float(membership.resampled_aucs(members, nonmembers, *whole)[0])


def test_loss_score_is_log_of_true_class_probability() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    y = np.array([0, 0, 1])
    np.testing.assert_allclose(membership.loss_scores(proba, y), np.log([0.9, 0.2, 0.5]))


def test_mentr_prefers_confident_right_over_confident_wrong() -> None:
    proba = np.array([[0.99, 0.01], [0.01, 0.99], [0.5, 0.5]])
    y = np.array([0, 0, 0])
    right, wrong, unsure = membership.mentr_scores(proba, y)
    assert right > unsure > wrong
    # the formula by hand for the unsure row: -(0.5 log 0.5) - 0.5 log 0.5 = log 2
    assert unsure == pytest.approx(-np.log(2))


def test_float32_probabilities_that_round_to_one_are_still_ranked_by_the_other_classes() -> None:
    # a memorised training row and a confidently right test row both have p_y == 1.0 in float32
    members = np.array([[1.0, 1e-12], [1e-13, 1.0]], dtype=np.float32)
    nonmembers = np.array([[1.0, 1e-7], [1e-6, 1.0]], dtype=np.float32)
    y = np.array([0, 1])
    assert members[0, 0] == nonmembers[0, 0] == 1.0
    for score in (membership.loss_scores, membership.mentr_scores):
        assert score(members, y).min() > score(nonmembers, y).max()
    np.testing.assert_allclose(membership.loss_scores(nonmembers, y), [-1e-7, -1e-6], rtol=1e-6)


def test_separable_scores_give_auc_one_and_full_tpr() -> None:
    members, nonmembers = np.linspace(1, 2, 50), np.linspace(-2, -1, 50)
    assert _auc(members, nonmembers) == pytest.approx(1.0)
    assert membership.tpr_at_fpr(members, nonmembers) == 1.0


def test_identical_distributions_give_auc_near_half() -> None:
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(size=5000), rng.normal(size=5000)
    assert _auc(members, nonmembers) == pytest.approx(0.5, abs=0.02)
    low, high = membership.auc_interval(members, nonmembers, seed=0)
    assert low < 0.5 < high


def test_resampled_aucs_match_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    members, nonmembers = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 30).astype(float)
    member_picks, nonmember_picks = rng.integers(0, 40, (3, 40)), rng.integers(0, 30, (3, 30))
    truth = np.r_[np.ones(40), np.zeros(30)]
    expected = [
        roc_auc_score(truth, np.r_[members[m], nonmembers[n]])
        for m, n in zip(member_picks, nonmember_picks, strict=True)
    ]
    got = membership.resampled_aucs(members, nonmembers, member_picks, nonmember_picks)
    np.testing.assert_allclose(got, expected)


def test_tpr_at_one_percent_fpr_on_a_hand_case() -> None:
    # 100 non-members at 0..99; members: 30 above every non-member, 70 at the bottom. At most one false
    # positive is allowed (1/100): the threshold just below 99 lets in the 30 members and 1 non-member.
    nonmembers = np.arange(100, dtype=float)
    members = np.r_[np.full(30, 200.0), np.full(70, -1.0)]
    assert membership.tpr_at_fpr(members, nonmembers) == pytest.approx(0.30)
    # 5 non-members above every member: no threshold with FPR <= 1% catches any member
    assert membership.tpr_at_fpr(np.zeros(50), np.r_[np.full(5, 9.0), np.full(95, -9.0)]) == 0.0


def test_balanced_indices_sample_the_larger_side_and_are_seeded() -> None:
    inside, outside = membership.balanced_indices(1000, 300, seed=3)
    assert len(inside) == len(outside) == 300
    assert len(set(inside.tolist())) == 300 and inside.max() < 1000
    np.testing.assert_array_equal(outside, np.arange(300))
    again, _ = membership.balanced_indices(1000, 300, seed=3)
    np.testing.assert_array_equal(inside, again)
    capped = membership.balanced_indices(1000, 800, seed=3, max_pairs=50)
    assert [len(side) for side in capped] == [50, 50]


def test_audit_reports_every_metric_and_needs_two_rows() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], size=400)
    y = rng.integers(0, 3, 400)
    scores = membership.audit(proba[:300], y[:300], proba[300:], y[300:], seed=0)
    assert set(scores) == {
        "privacy/membership_auc", "privacy/membership_auc/ci_low", "privacy/membership_auc/ci_high",
        "privacy/membership_tpr_at_1pct_fpr", "privacy/membership_mentr_auc",
        "privacy/membership_mentr_tpr_at_1pct_fpr", "privacy/membership_pairs",
    }  # fmt: skip
    assert scores["privacy/membership_pairs"] == 100
    assert scores["privacy/membership_auc/ci_low"] <= scores["privacy/membership_auc"]
    assert scores["privacy/membership_auc"] <= scores["privacy/membership_auc/ci_high"]
    assert membership.audit(proba[:1], y[:1], proba, y) == {}


def test_classifier_evaluation_audits_train_against_test() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    splits = {name: (None, y, {}) for name in ("train", "val", "test")}
    proba = {name: np.eye(2)[y] * 0.8 + 0.1 for name in splits}
    scores = _membership(splits, proba, seed=0)
    assert scores["privacy/membership_auc"] == pytest.approx(0.5)  # same outputs on both sides
    assert _membership({"test": splits["test"]}, proba, seed=0) == {}


# ---------------------------------------------------------------- an over-fitted network is rejected


def _noisy_task(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A linear rule on 2 of 5 features with 20% of the labels flipped: the flips can only be memorised."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5)).astype(np.float32)
    y = (x[:, :2].sum(axis=1) > 0).astype(int)
    flip = rng.random(rows) < 0.2
    return x, np.where(flip, 1 - y, y)


def _train_and_predict(
    x: np.ndarray, y: np.ndarray, held_out: np.ndarray, steps: int, hidden: int, weight_decay: float
) -> tuple[np.ndarray, np.ndarray]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=weight_decay)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):  # full batch
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs), targets).backward()
        optimiser.step()
    with torch.no_grad():
        return (
            torch.softmax(net(inputs), dim=1).numpy(),
            torch.softmax(net(torch.from_numpy(held_out)), dim=1).numpy(),
        )


def test_gate_rejects_an_overfitted_network_and_passes_its_regularised_twin() -> None:
    x, y = _noisy_task(200, seed=0)
    x_test, y_test = _noisy_task(200, seed=1)
    memorised = _train_and_predict(x, y, x_test, steps=600, hidden=256, weight_decay=0.0)  # train acc 1.0
    regularised = _train_and_predict(x, y, x_test, steps=50, hidden=8, weight_decay=0.1)  # stopped early
    audits = [membership.audit(train, y, test, y_test, seed=0) for train, test in (memorised, regularised)]
    over, twin = (a["privacy/membership_auc"] for a in audits)
    assert over > 0.65 and twin < 0.56, (over, twin)  # measured: 0.709 and 0.510
    assert audits[0]["privacy/membership_auc/ci_low"] > audits[1]["privacy/membership_auc/ci_high"]

    gates = GatesConfig(min_primary=0.0, max_membership_auc=0.6)
    verdicts = [decide({"test/balanced_accuracy": 0.6, **a}, gates, None) for a in audits]
    assert [v.verdict for v in verdicts] == ["rejected", "promoted"]
    failed = verdicts[0].failed[0]
    assert failed.name == "max_membership_auc" and failed.metric == "privacy/membership_auc"
