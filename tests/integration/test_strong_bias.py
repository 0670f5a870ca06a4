"""Strong bias on the built-in income data: the unmitigated MLP fails the fairness gate; the same network
with fair thresholds passes it at a small accuracy cost, becomes champion, and serves what was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.conftest import REPO, make_project, mlflow_uris_restored

pytestmark = pytest.mark.slow
BIAS = 0.75  # the label's log-odds move with sex and race directly and through a proxy (synthetic.py)


@pytest.fixture(scope="module")
def biased(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tasks"] = {"tabular": raw["tasks"]["tabular"]}
    raw["tasks"]["tabular"]["ingest"]["bias"] = BIAS
    raw["models"] = {k: raw["models"][k] for k in ("tabular-mlp", "tabular-mlp-thresholds")}
    raw["pretraining"] = {}  # its study names image models
    root = make_project(tmp_path_factory.mktemp("bias") / "project", raw)
    from dlops import stages

    with mlflow_uris_restored():  # a module fixture outlives the per-test restore
        for stage in (stages.ingest, stages.validate, stages.preprocess):
            stage("tabular", root)
        for model in raw["models"]:
            stages.train(model, root)
            stages.evaluate(model, root)
    return root


def metrics(root: Path, model: str) -> dict:
    return json.loads((root / f"reports/evaluate/{model}/metrics.json").read_text())


def test_unmitigated_fails_the_gate_and_mitigated_becomes_champion_at_a_small_cost(biased: Path) -> None:
    from dlops import stages
    from dlops.gates import GateFailure

    with pytest.raises(GateFailure, match="demographic_parity_difference = 0.1[0-9]* .*exceeds the limit"):
        stages.register("tabular-mlp", biased)
    assert stages.champion("tabular-mlp", biased) is None

    report = stages.register("tabular-mlp-thresholds", biased)
    assert report["verdict"] == "promoted" and report["current_champion"] == report["version"] == "1"
    plain, fair = metrics(biased, "tabular-mlp"), metrics(biased, "tabular-mlp-thresholds")
    assert plain["fairness/max/demographic_parity_difference"] > 0.1
    assert plain["fairness/max/demographic_parity_difference/ci_low"] > 0.1  # not noise: the CI is above
    assert fair["fairness/max/demographic_parity_difference"] <= 0.1
    assert fair["fairness/max/equalized_odds_difference"] <= 0.15
    cost = plain["test/accuracy"] - fair["test/accuracy"]
    assert 0 <= cost < 0.03, cost  # measured 0.0096 at bias 0.75
    # its own before/after: the same network without thresholds
    table = json.loads((biased / "reports/evaluate/tabular-mlp-thresholds/mitigation.json").read_text())
    before, after = table["rows"]
    assert before["variant"] == "unmitigated" and after["variant"] == "mitigated"
    assert before["demographic_parity_difference"] > 0.1 >= after["demographic_parity_difference"]
    assert table["accuracy_cost"] == pytest.approx(before["accuracy"] - after["accuracy"], abs=1e-6)


def test_the_champion_serves_the_thresholds_it_was_measured_with(biased: Path) -> None:
    import mlflow

    from dlops import stages

    info = stages.champion("tabular-mlp-thresholds", biased)
    assert info is not None
    mlflow.set_tracking_uri(f"sqlite:///{biased}/mlflow.db")
    model = mlflow.pyfunc.load_model(info["uri"])
    raw_test = pd.read_parquet(biased / "data/processed/tabular/test_raw.parquet")
    served = model.predict(raw_test.drop(columns=["income"]))
    measured = pd.read_csv(biased / "reports/evaluate/tabular-mlp-thresholds/predictions.csv")
    assert (served["prediction"].to_numpy() == measured["predicted"].to_numpy()).all()
    shuffled = raw_test.drop(columns=["income"]).sample(frac=1.0, random_state=3)
    again = model.predict(shuffled)  # a row's decision does not depend on its batch or position
    assert (again["prediction"].to_numpy() == served["prediction"].to_numpy()[shuffled.index]).all()
    with pytest.raises(Exception, match="missing inputs \\['race'\\]"):  # the signature requires it
        model.predict(raw_test.drop(columns=["income", "race"]))


def test_the_model_card_shows_the_mitigation_and_the_reasons(biased: Path) -> None:
    from mlflow import MlflowClient

    from dlops import stages

    info = stages.champion("tabular-mlp-thresholds", biased)
    assert info is not None
    uri = f"sqlite:///{biased}/mlflow.db"
    client = MlflowClient(uri, uri)
    version = client.get_model_version(info["model_name"], info["version"])
    card = version.description
    for heading in ("Metrics", "Gates", "Mitigation", "Fairness gaps", "Feature importance", "Decision"):
        assert heading in card, heading
    assert "**Decision: promoted**" in card and "95% CI" in card
    html = client.download_artifacts(info["run_id"], "model_card/model_card.html")
    text = Path(html).read_text()
    assert "data:image/png;base64," in text and "neighborhood_income" in text
