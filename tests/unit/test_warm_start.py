"""Warm start (`train.init_from: champion`): matching tensors are copied and the rest keep their fresh
initialisation; end to end, a second training run starts from the registered @champion, says so in its
MLflow tags and checkpoint, keeps that lineage when resumed, and trains from scratch when there is none.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tests.conftest import make_project, mlflow_uris_restored, tiny_params
from torch import nn

from dlops.training.checkpoint import load_matching, load_safe

PAIR = "tabular-mlp"
NAME = f"dlops-{PAIR}"  # params.yaml: mlflow.model_prefix is dlops


class _Net(nn.Module):
    def __init__(self, vocab: int, classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 4)
        self.body = nn.Linear(4, 8)
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, classes)


# ------------------------------------------------------------------------------------------ the core
def test_load_matching_copies_same_name_and_shape_and_leaves_the_rest_as_initialised() -> None:
    torch.manual_seed(0)
    parent = _Net(vocab=10, classes=2)
    with torch.no_grad():
        parent.norm.running_mean.fill_(3.0)  # buffers travel too
    state = {k: v.clone() for k, v in parent.state_dict().items()}
    state["old.extra"] = torch.zeros(2)
    torch.manual_seed(1)
    child = _Net(vocab=12, classes=3)  # the vocabulary grew and a class was added
    fresh = {k: v.clone() for k, v in child.state_dict().items()}

    rng = torch.get_rng_state()
    report = load_matching(child, state)
    assert torch.equal(torch.get_rng_state(), rng)  # no random draws: the training seed is untouched

    assert set(report.skipped) == {"embed.weight", "head.weight", "head.bias"}
    assert report.skipped["embed.weight"] == "shape (12, 4), parent (10, 4)"
    assert report.unused == ["old.extra"]
    assert report.loaded == [k for k in fresh if k not in report.skipped]
    got = child.state_dict()
    for key in report.loaded:
        assert torch.equal(got[key], state[key]), key
    for key in report.skipped:
        assert torch.equal(got[key], fresh[key]), key
    assert torch.equal(got["norm.running_mean"], torch.full((8,), 3.0))


def test_load_matching_reports_tensors_the_parent_lacks() -> None:
    child = _Net(vocab=5, classes=2)
    report = load_matching(child, {"body.weight": torch.ones(8, 4)})
    assert report.loaded == ["body.weight"] and torch.equal(child.body.weight, torch.ones(8, 4))
    assert report.skipped["head.bias"] == "absent from the parent"


# --------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A tiny project whose tabular MLP was trained from scratch (init_from: null), evaluated and
    registered as v1 @champion."""
    from dlops import stages, tracking

    raw = tiny_params()
    root = make_project(tmp_path_factory.mktemp("warm") / "project", raw)
    with mlflow_uris_restored(), pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.delenv("DLOPS_PIPELINE_RUN_ID", raising=False)
        for stage in (stages.ingest, stages.validate, stages.preprocess):
            stage("tabular", root)

        def no_call(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the default path must not look for a champion")

        with pytest.MonkeyPatch.context() as guard:
            guard.setattr(tracking, "champion_checkpoint", no_call)
            scratch = stages.train(PAIR, root)
        history = json.loads((root / f"reports/train/{PAIR}/history.json").read_text())
        ckpt = load_safe(root / f"models/{PAIR}/model.pt")
        stages.evaluate(PAIR, root)
        report = stages.register(PAIR, root)
        assert report["version"] == report["current_champion"] == "1"
        yield {
            "root": root,
            "raw": raw,
            "scratch": scratch,
            "history": history,
            "ckpt": ckpt,
            "report": report,
        }


def _set_params(root: Path, raw: dict[str, Any], init_from: str | None, prefix: str = "dlops") -> None:
    raw = copy.deepcopy(raw)
    raw["models"][PAIR]["train"]["init_from"] = init_from
    raw["mlflow"]["model_prefix"] = prefix
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _run_tags(root: Path, sha: str) -> dict[str, str]:
    from dlops import tracking

    run_id = tracking.find_run(PAIR, sha)
    assert run_id is not None
    return dict(tracking.client().get_run(run_id).data.tags)


def test_default_path_writes_no_init_from(registered: dict[str, Any]) -> None:
    ckpt = registered["ckpt"]
    assert "init_from" not in ckpt and ckpt["train_config"]["init_from"] is None
    tags = _run_tags(registered["root"], registered["scratch"]["model_sha256"])
    assert not any(key.startswith("init_from") for key in tags)


def test_warm_start_from_the_champion_resumed_after_an_interruption(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlops import stages, tracking

    root = registered["root"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _set_params(root, registered["raw"], "champion")
    with pytest.raises(InterruptedError):
        stages.train(PAIR, root, max_epochs=1)  # warm-started, then interrupted after one epoch
    record = root / f".dlops/checkpoints/{PAIR}/init_from.json"
    assert json.loads(record.read_text())["tags"]["init_from"] == f"models:/{NAME}/1"

    def no_call(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a resumed run must not download a champion again")

    monkeypatch.setattr(tracking, "champion_checkpoint", no_call)
    warm = stages.train(PAIR, root)  # resumes from last.pt: the resume wins over a new warm start
    assert not record.exists() and not (root / f".dlops/checkpoints/{PAIR}/last.pt").exists()

    tags = _run_tags(root, warm["model_sha256"])
    assert tags["init_from"] == f"models:/{NAME}/1"
    assert tags["init_from.run_id"] == registered["report"]["run_id"]
    state = load_safe(root / f"models/{PAIR}/model.pt")
    assert tags["init_from.loaded_tensors"] == str(len(state["state_dict"]))  # same architecture: all
    assert tags["init_from.skipped"] == "" and tags["train.resumed_from_epoch"] == "1"
    assert state["init_from"]["uri"] == f"models:/{NAME}/1"
    assert state["init_from"]["model_sha256"] == registered["scratch"]["model_sha256"]

    scratch_first = registered["history"]["epochs"][0]["val/loss"]
    warm_first = json.loads((root / f"reports/train/{PAIR}/history.json").read_text())["epochs"][0]
    assert warm_first["val/loss"] < scratch_first  # it starts from trained weights


def test_no_champion_yet_trains_from_scratch_and_says_so(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from dlops import stages

    root = registered["root"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _set_params(root, registered["raw"], "champion", prefix="fresh")  # fresh-tabular-mlp: never registered
    with caplog.at_level(logging.WARNING, logger="dlops.stages"):
        cold = stages.train(PAIR, root)
    assert (
        "init_from: champion, but fresh-tabular-mlp has no @champion yet; training from scratch"
        in caplog.text
    )
    assert _run_tags(root, cold["model_sha256"])["init_from"] == "none (no champion yet)"
    assert load_safe(root / f"models/{PAIR}/model.pt")["init_from"]["uri"] is None
    history = json.loads((root / f"reports/train/{PAIR}/history.json").read_text())
    assert history["epochs"] == registered["history"]["epochs"]  # the same run as init_from: null


def test_a_store_error_is_not_taken_for_no_champion(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from dlops import stages

    root = registered["root"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _set_params(root, registered["raw"], "champion")

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise MlflowException("connection refused", error_code="TEMPORARILY_UNAVAILABLE")

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", unreachable)
    with pytest.raises(MlflowException, match="connection refused"):
        stages.train(PAIR, root)


# ------------------------------------------------------------------------- explicit sources, lineage
def _set_transfer(root: Path, raw: dict[str, Any], **train: Any) -> None:
    raw = copy.deepcopy(raw)
    raw["models"][PAIR]["train"].update(train)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.mark.parametrize("uri", [f"models:/{NAME}@champion", f"models:/{NAME}/1"])
def test_warm_start_from_a_registered_alias_or_version(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    from dlops import stages

    root = registered["root"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _set_transfer(root, registered["raw"], init_from=uri, head_lr=0.001)
    warm = stages.train(PAIR, root)
    tags = _run_tags(root, warm["model_sha256"])
    parent_sha = registered["scratch"]["model_sha256"]
    assert tags["init_from"] == f"models:/{NAME}/1" and tags["init_from.requested"] == uri
    assert tags["dlops.parent_model"] == f"models:/{NAME}/1 sha256:{parent_sha}"
    assert tags["init_from.run_id"] == registered["report"]["run_id"]
    state = load_safe(root / f"models/{PAIR}/model.pt")
    assert state["init_from"]["model_sha256"] == parent_sha
    first = json.loads((root / f"reports/train/{PAIR}/history.json").read_text())["epochs"][0]
    assert first["val/loss"] < registered["history"]["epochs"][0]["val/loss"]


def test_a_missing_registered_source_is_an_error_not_a_cold_start(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlops import stages
    from dlops.training.transfer import TransferError

    root = registered["root"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for uri in (f"models:/{NAME}/99", f"models:/{NAME}@nope", "models:/never-registered@champion"):
        _set_transfer(root, registered["raw"], init_from=uri)
        with pytest.raises(TransferError, match=f"models.{PAIR}.train.init_from: {uri} is not in the model"):
            stages.train(PAIR, root)


def test_file_source_and_the_fine_tuned_version_names_its_parent_in_lineage(
    registered: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import shutil

    from dlops import stages, tracking
    from dlops.files import file_sha256
    from dlops.gates import GateFailure
    from dlops.lineage import render

    root = registered["root"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    parent = root / "parents" / "mlp.pt"
    parent.parent.mkdir(exist_ok=True)
    shutil.copy(registered["root"] / f"models/{PAIR}/model.pt", parent)
    _set_transfer(root, registered["raw"])
    stages.train(PAIR, root)  # overwrite models/<pair>/model.pt: the file parent is a copy
    sha = file_sha256(parent)
    _set_transfer(root, registered["raw"], init_from="parents/mlp.pt", freeze=["body.0"], lr=0.01)
    warm = stages.train(PAIR, root)
    tags = _run_tags(root, warm["model_sha256"])
    assert tags["init_from"] == "parents/mlp.pt" and tags["init_from.run_id"] == "None"
    assert tags["dlops.parent_model"] == f"parents/mlp.pt sha256:{sha}"
    ckpt = load_safe(root / f"models/{PAIR}/model.pt")
    before = load_safe(parent)["state_dict"]
    frozen = [key for key in before if key.startswith("body.0.") and before[key].is_floating_point()]
    assert frozen and all(torch.equal(ckpt["state_dict"][k], before[k]) for k in frozen if "running" not in k)

    stages.evaluate(PAIR, root)
    with contextlib.suppress(GateFailure):  # registered all the same; a gate only keeps it from @champion
        stages.register(PAIR, root)
    found = tracking.version_with_sha(tracking.client(), NAME, warm["model_sha256"])
    assert found is not None and found.tags["dlops.parent_model"] == f"parents/mlp.pt sha256:{sha}"
    assert f"parents/mlp.pt sha256:{sha}" in found.description  # the model card's lineage names the parent
    version = found.version
    chain = stages.lineage(f"models:/{NAME}/{version}", root)
    assert chain["parent_model"] == f"parents/mlp.pt sha256:{sha}"
    assert f"fine-tuned from parents/mlp.pt sha256:{sha}" in render(chain)
