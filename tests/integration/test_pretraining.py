"""Stage `pretraining` end to end on the tiny digits: an autoencoder is trained, then the CNN on 10% of
the labels from scratch and from its encoder; the report and the MLflow run hold both arms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import make_project, mlflow_uris_restored, tiny_params

STUDY = "images-cnn-from-autoencoder"


def run_study(root: Path) -> dict[str, Any]:
    """The images task's data stages, the autoencoder, then the study, in-process."""
    from dlops import stages

    for stage in (stages.ingest, stages.validate, stages.preprocess):
        stage("images", root)
    stages.train("images-autoencoder", root)
    return stages.pretraining(STUDY, root)


@pytest.mark.parametrize("encoder_data", ["all", "model"])
def test_pretraining_stage_reports_both_arms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoder_data: str
) -> None:
    from dlops import tracking
    from dlops.files import file_sha256

    raw = tiny_params(images=True)
    raw["pretraining"][STUDY].update(seeds=[0, 1], encoder_data=encoder_data)
    root = make_project(tmp_path / "project", raw, dvc=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with mlflow_uris_restored():
        report = run_study(root)
        saved = json.loads((root / f"reports/pretraining/{STUDY}.json").read_text())
        runs = tracking.client().search_runs(
            [tracking.experiment_id()], filter_string=f"attributes.run_name = 'pretraining:{STUDY}'"
        )
        (run,) = runs
        artifacts = [a.path for a in tracking.client().list_artifacts(run.info.run_id)]

    assert saved == json.loads(json.dumps(report))
    assert saved["label_fraction"] == 0.1 and saved["encoder"]["model"] == "images-autoencoder"
    if encoder_data == "all":  # an encoder trained here on every training image, labels unused
        assert saved["encoder"]["trained_on_classes"] == "all" and saved["encoder"]["trained_here"]
        assert "sha256" not in saved["encoder"]
    else:  # the anomaly detector's own file: it saw the normal classes only
        assert saved["encoder"]["trained_on_classes"] == [0, 1, 2, 3, 4]
        model_file = root / "models" / "images-autoencoder" / "model.pt"
        assert saved["encoder"]["sha256"] == file_sha256(model_file)
    assert saved["labelled_rows"]["train"] >= 10  # at least one per class
    for arm in ("scratch", "pretrained"):
        assert set(saved[arm]["per_seed"]) == {"0", "1"}
        assert 0.0 <= saved[arm]["accuracy"] <= 1.0
        mean = sum(s["accuracy"] for s in saved[arm]["per_seed"].values()) / 2
        assert saved[arm]["accuracy"] == pytest.approx(mean)
    assert saved["gain"]["accuracy"] == pytest.approx(
        saved["pretrained"]["accuracy"] - saved["scratch"]["accuracy"]
    )
    assert saved["transfer"]["mapped"]["body.0.weight"] == "encoder.0.weight"
    assert "body.8.weight" in saved["transfer"]["loaded"]  # the second block's first conv: the second stage
    metrics: dict[str, Any] = run.data.metrics
    assert metrics["scratch/accuracy"] == pytest.approx(saved["scratch"]["accuracy"])
    assert metrics["gain/accuracy"] == pytest.approx(saved["gain"]["accuracy"])
    assert run.data.params["study.label_fraction"] == "0.1"
    assert run.data.tags["dlops.study"] == STUDY and "git.commit" in run.data.tags
    assert f"{STUDY}.png" in artifacts and "pretraining.json" in artifacts


def test_a_text_study_pretrains_the_transformer_on_masked_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text side: no encoder entry; the Transformer's own body learns masked tokens of every training
    review, then both arms train on half the labels; report, MLflow run and transferred tensors."""
    from dlops import stages, tracking

    raw = tiny_params(images=True)
    raw["pretraining"] = {
        "masked": {
            "task": "text", "classifier": "text-transformer", "label_fraction": 0.5, "seeds": [0],
            "encoder_epochs": 3,
        }
    }  # fmt: skip
    root = make_project(tmp_path / "project", raw, dvc=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with mlflow_uris_restored():
        for stage in (stages.ingest, stages.validate, stages.preprocess):
            stage("text", root)
        report = stages.pretraining("masked", root)
        (run,) = tracking.client().search_runs(
            [tracking.experiment_id()], filter_string="attributes.run_name = 'pretraining:masked'"
        )
    saved = json.loads((root / "reports/pretraining/masked.json").read_text())
    assert saved == json.loads(json.dumps(report))
    encoder = saved["encoder"]
    assert encoder["objective"] == "masked-tokens" and encoder["model"] == "text-transformer"
    assert encoder["data"] == "all" and 1 <= encoder["best_epoch"] <= encoder["epochs_run"] <= 3
    assert 0.0 < encoder["val_masked_token_accuracy"] <= 1.0  # learning: tests/unit/test_text_pretraining
    assert "embedding.weight" in saved["transfer"]["loaded"]
    assert not any(key.startswith("head.") for key in saved["transfer"]["loaded"])
    assert "channels" not in saved
    assert saved["gain"]["accuracy"] == pytest.approx(
        saved["pretrained"]["accuracy"] - saved["scratch"]["accuracy"]
    )
    assert run.data.params["encoder.objective"] == "masked-tokens"
    assert run.data.metrics["pretrained/accuracy"] == pytest.approx(saved["pretrained"]["accuracy"])


def test_unknown_study_names_the_known_ones(project: Path) -> None:
    from dlops import stages
    from dlops.params import ConfigError

    with pytest.raises(ConfigError, match=r"pretraining: unknown study 'nope'; known: \[\]"):
        stages.pretraining("nope", project)


@pytest.mark.slow
def test_at_ten_percent_of_the_labels_the_anomaly_detectors_encoder_beats_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's check at the default settings (16x16 digits, the real autoencoder and CNN entries of
    params.yaml) with the anomaly detector's encoder (digits 0-4, `encoder_data: model`): the pretrained
    arm wins on mean test accuracy, and in every seed."""
    import yaml
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tasks"] = {"images": raw["tasks"]["images"]}
    raw["models"] = {name: raw["models"][name] for name in ("images-cnn", "images-autoencoder")}
    raw["retrain"]["batches"] = {}
    raw["pretraining"] = {STUDY: {**raw["pretraining"][STUDY], "encoder_data": "model"}}  # images only
    root = make_project(tmp_path / "project", raw, dvc=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with mlflow_uris_restored():
        report = run_study(root)
    _pretrained_wins(report)


def test_the_default_runs_study_with_an_encoder_of_every_image_beats_scratch() -> None:
    """The same check with `encoder_data: all` (params.yaml's), read off the default run's report: the
    file dvc.lock records for stage pretraining@images-cnn-from-autoencoder (rerunning it here would cost
    four minutes for the number `dvc repro` reproduces)."""
    import hashlib

    import yaml
    from tests.conftest import REPO

    report_file = REPO / "reports" / "pretraining" / f"{STUDY}.json"
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    (locked,) = [
        out
        for out in lock["stages"][f"pretraining@{STUDY}"]["outs"]
        if out["path"] == str(report_file.relative_to(REPO))
    ]
    assert hashlib.md5(report_file.read_bytes()).hexdigest() == locked["md5"]
    report = json.loads(report_file.read_text())
    assert report["encoder"]["data"] == "all"
    _pretrained_wins(report)


def _pretrained_wins(report: dict[str, Any]) -> None:
    assert report["label_fraction"] == 0.1
    scratch, pretrained = report["scratch"], report["pretrained"]
    assert pretrained["accuracy"] > scratch["accuracy"] + 0.03
    for seed in ("0", "1", "2"):
        assert pretrained["per_seed"][seed]["accuracy"] > scratch["per_seed"][seed]["accuracy"]
