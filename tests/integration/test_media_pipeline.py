"""The tiny DAG with the image and text tasks (digits at 8x8, 1,500 reviews) and every family, through
dvc repro to the registry, and each registered pyfunc serving what its kind serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import make_project, tiny_params
from tests.integration.test_pipeline import client, dvc

pytestmark = pytest.mark.slow

IMAGE_MODELS = [
    "images-autoencoder",
    "images-cnn",
    "images-gan",
    "images-mlp",
    "images-mlp-private",
    "images-vae",
]
TEXT_MODELS = ["text-mlp", "text-rnn", "text-transformer"]


@pytest.fixture(scope="module")
def images_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tiny_params(images=True)  # the tabular task and its models have their own tests
    raw["tasks"].pop("tabular")
    raw["models"] = {name: entry for name, entry in raw["models"].items() if entry["task"] != "tabular"}
    raw["retrain"]["batches"] = {}
    root = make_project(tmp_path_factory.mktemp("images") / "project", raw)
    dvc(root, "repro")
    return root


def test_every_image_family_is_registered_with_its_gates(images_project: Path) -> None:
    for pair in IMAGE_MODELS + TEXT_MODELS:
        version = client(images_project).get_model_version_by_alias(f"dlops-{pair}", "champion")
        assert version.tags["decision"] == "promoted", pair
        assert version.tags["gate.min_primary.passed"] == "true", pair
        assert "git.commit" in version.tags and "data.version" in version.tags


def test_the_memorising_control_is_caught_by_the_membership_gate_and_never_promoted(
    images_project: Path,
) -> None:
    version = client(images_project).get_model_version("dlops-text-mlp-memorised", "1")
    assert version.tags["control"] == "max_membership_auc" and version.tags["control.caught"] == "true"
    assert version.tags["gate.max_membership_auc.passed"] == "false" and not version.aliases
    assert float(version.tags["gate.max_membership_auc.value"]) > 0.6


def test_the_private_twin_is_registered_with_its_budget_in_tags_metrics_and_history(
    images_project: Path,
) -> None:
    import json

    registry = client(images_project)
    private = registry.get_model_version_by_alias("dlops-images-mlp-private", "champion")
    epsilon = float(private.tags["privacy.epsilon"])
    assert 0 < epsilon <= 3.0 and private.tags["privacy.delta"] == "1e-05"
    assert private.tags["gate.max_epsilon.passed"] == "true"
    plain = registry.get_model_version_by_alias("dlops-images-mlp", "champion")
    assert plain.tags["privacy"] == "none" and "privacy.epsilon" not in plain.tags
    reports = images_project / "reports"
    metrics = json.loads((reports / "evaluate/images-mlp-private/metrics.json").read_text())
    assert metrics["privacy/epsilon"] == epsilon and metrics["privacy/steps"] > 0
    history = json.loads((reports / "train/images-mlp-private/history.json").read_text())["epochs"]
    spent = [row["privacy/epsilon"] for row in history]
    assert spent == sorted(spent) and spent[-1] == epsilon


def test_each_pyfunc_serves_its_kind(images_project: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{images_project}/mlflow.db")
    with np.load(images_project / "data/processed/images/test.npz") as split:
        pixels = split["x"][:6]  # uint8 (6, 1, 8, 8)
    classifier = mlflow.pyfunc.load_model("models:/dlops-images-cnn@champion").predict(pixels)
    assert len(classifier) == 6 and set(classifier["prediction"]) <= {str(d) for d in range(10)}
    assert np.allclose(classifier.filter(like="proba_").sum(axis=1), 1.0)
    anomaly = mlflow.pyfunc.load_model("models:/dlops-images-autoencoder@champion").predict(pixels)
    assert list(anomaly.columns) == ["anomaly_score", "is_anomaly"] and (anomaly["anomaly_score"] >= 0).all()
    import pandas as pd

    generated = mlflow.pyfunc.load_model("models:/dlops-images-gan@champion").predict(
        pd.DataFrame({"label": [3, 7]})
    )
    assert np.asarray(generated).shape == (2, 1, 8, 8)
    assert np.asarray(generated).min() >= 0.0 and np.asarray(generated).max() <= 1.0


def test_reports_hold_each_kinds_metrics_and_a_second_repro_does_nothing(images_project: Path) -> None:
    import json

    def metrics(pair: str) -> dict[str, object]:
        return json.loads((images_project / f"reports/evaluate/{pair}/metrics.json").read_text())

    assert "bias/class_recall_gap" in metrics("images-cnn")
    assert metrics("images-autoencoder")["test/anomaly_roc_auc"] is not None
    gan = metrics("images-gan")
    for key in ("test/sample_accuracy", "generate/frechet_distance", "generate/class_coverage"):
        assert key in gan, key
    assert "generate/judge_test_accuracy_with_synthetic" in gan
    assert {"test/anomaly_roc_auc", "test/sample_accuracy"} <= set(metrics("images-vae"))
    figures = images_project / "reports/evaluate"
    assert (figures / "images-cnn/figures/attributions.png").is_file()
    assert (figures / "images-gan/figures/samples.png").is_file()
    assert (figures / "images-autoencoder/figures/reconstructions.png").is_file()
    assert "up to date" in dvc(images_project, "repro").stdout


def test_text_models_predict_raw_text_and_report_the_challenge_set(images_project: Path) -> None:
    import json

    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(f"sqlite:///{images_project}/mlflow.db")
    reviews = pd.DataFrame({"text": ["The acting was not good.", "I loved the film, but the plot was dull."]})
    styles = sorted(pd.read_parquet(images_project / "data/raw/text.parquet")["group"].unique())
    for pair in TEXT_MODELS:
        model = mlflow.pyfunc.load_model(f"models:/dlops-{pair}@champion")
        rows = reviews.assign(group=styles[0]) if pair == "text-mlp" else reviews  # fair thresholds by style
        out = model.predict(rows)
        assert list(out["prediction"].unique()) and set(out["prediction"]) <= {"neg", "pos"}, pair
        metrics = json.loads((images_project / f"reports/evaluate/{pair}/metrics.json").read_text())
        assert (
            "challenge/negation/accuracy" in metrics and "fairness/group/equalized_odds_difference" in metrics
        )
        assert (images_project / f"reports/evaluate/{pair}/figures/token_attributions.svg").is_file()
    mitigation = json.loads((images_project / "reports/evaluate/text-mlp/mitigation.json").read_text())
    assert [row["variant"] for row in mitigation["rows"]] == ["unmitigated", "mitigated"]
    assert mitigation["thresholds"]["constraint"] == "equalized_odds"
