"""Transfer learning: `init_from` forms are validated naming the key, an autoencoder's encoder lands in
the CNN's blocks, frozen weights stay as loaded, the head gets its own learning rate, and a head for a
new number of classes starts fresh and is reported."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from tests.conftest import tiny_params

from dlops.files import file_sha256
from dlops.models.registry import build_model
from dlops.pairs import parent as parent_lib
from dlops.params import ConfigError, MlflowConfig, TrainConfig, load_params
from dlops.training import transfer
from dlops.training.checkpoint import model_checkpoint, save_atomic
from dlops.training.loop import _optimizers
from dlops.training.loop import train as fit

SHAPE = (1, 8, 8)
STUDY = "images-cnn-from-autoencoder"


def _load(tmp_path: Path, raw: dict[str, Any]) -> Any:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    "value", ["champion", "models:/dlops-images-cnn@champion", "models:/other.model/12", "parents/cnn.pt"]
)
def test_init_from_accepts_its_four_forms(tmp_path: Path, value: str) -> None:
    params = _load(tmp_path, tiny_params(**{"models.tabular-mlp.train.init_from": value}))
    assert params.pair("tabular-mlp").train.init_from == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("models:/name", "is not a registered model URI"),
        ("models:/name@", "is not a registered model URI"),
        ("s3://bucket/model.pt", "no URL, absolute path or '..'"),
        ("/abs/model.pt", "no URL, absolute path or '..'"),
        ("models/../../elsewhere/model.pt", "no URL, absolute path or '..'"),
        ("latest", None),  # a relative path: allowed here, missing at train time
    ],
)
def test_init_from_refuses_urls_escapes_and_bad_uris(
    tmp_path: Path, value: str, fragment: str | None
) -> None:
    raw = tiny_params(**{"models.tabular-mlp.train.init_from": value})
    if fragment is None:
        _load(tmp_path, raw)
        return
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, raw)
    assert "models.tabular-mlp.train.init_from: " in str(err.value) and fragment in str(err.value)


def test_freeze_needs_init_from_and_head_lr_a_classifier(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\.images-cnn\.train\.freeze: \['body'\] freezes"):
        _load(tmp_path, tiny_params(images=True, **{"models.images-cnn.train.freeze": ["body"]}))
    with pytest.raises(
        ConfigError, match=r"models\.images-autoencoder\.train\.head_lr: a autoencoder has no"
    ):
        _load(tmp_path, tiny_params(images=True, **{"models.images-autoencoder.train.head_lr": 0.01}))
    raw = tiny_params(images=True, **{"models.images-cnn.train.init_from": "champion"})
    raw["models"]["images-cnn"]["train"].update(freeze=["body.0"], head_lr=0.01)
    assert _load(tmp_path, raw).pair("images-cnn").train.freeze == ["body.0"]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("encoder", "images-cnn", "'images-cnn' is a cnn; it must be a autoencoder or vae"),
        ("classifier", "images-mlp", "'images-mlp' is a mlp; it must be a cnn"),
        ("classifier", "images-cnnn", "unknown model 'images-cnnn'"),
        ("classifier", "text-rnn", "'text-rnn' is a rnn"),
        ("task", "imagez", "unknown task 'imagez'"),
    ],
)
def test_pretraining_cross_checks_name_the_key(tmp_path: Path, key: str, value: str, fragment: str) -> None:
    raw = tiny_params(images=True, **{f"pretraining.{STUDY}.{key}": value})
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, raw)
    assert f"pretraining.{STUDY}.{key}: " in str(err.value) and fragment in str(err.value)


def test_pretraining_entries_must_be_on_the_study_task(tmp_path: Path) -> None:
    raw = tiny_params(images=True, series=True)
    raw["pretraining"]["text-study"] = {"task": "text", "classifier": "series-rnn"}
    with pytest.raises(
        ConfigError,
        match=r"pretraining\.text-study\.classifier: 'series-rnn' is on task 'series', not 'text'",
    ):
        _load(tmp_path, raw)


@pytest.mark.parametrize(
    ("study", "fragment"),
    [
        ({"classifier": "text-rnn", "encoder": "images-autoencoder"}, "encoder: a text classifier's encoder"),
        ({"classifier": "text-mlp"}, "classifier: 'text-mlp' is a mlp; it must be a rnn or transformer"),
        ({"classifier": "text-transformer", "mask_fraction": 1.0}, "mask_fraction"),
    ],
)
def test_text_pretraining_studies_are_checked(tmp_path: Path, study: dict, fragment: str) -> None:
    raw = tiny_params(images=True)
    raw["pretraining"]["text-study"] = {"task": "text", **study}
    with pytest.raises(ConfigError, match="pretraining") as err:
        _load(tmp_path, raw)
    assert fragment in str(err.value)


def test_an_image_study_needs_an_encoder_entry(tmp_path: Path) -> None:
    raw = tiny_params(images=True, **{f"pretraining.{STUDY}.encoder": None})
    with pytest.raises(ConfigError, match=rf"pretraining\.{STUDY}\.encoder: name an autoencoder or vae"):
        _load(tmp_path, raw)


# --------------------------------------------------------------------------------- encoder -> CNN
def _parent_ckpt(family: str, config: dict[str, Any], num_classes: int = 10) -> tuple[Any, dict[str, Any]]:
    torch.manual_seed(7)
    model = build_model(family, input_shape=SHAPE, num_classes=num_classes, config=config)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and "encoder" in name:
                tensor.uniform_(-1.0, 1.0)  # recognisable values, BatchNorm statistics included
    ckpt = model_checkpoint(
        model=model,
        pair="parent",
        task="images",
        family=family,
        model_config=config,
        input_shape=SHAPE,
        classes=[str(c) for c in range(num_classes)],
        train_config={},
        best_epoch=1,
    )
    return model, ckpt


@pytest.mark.parametrize("family", ["autoencoder", "vae"])
def test_encoder_stages_go_to_the_first_conv_and_batchnorm_of_each_cnn_block(family: str) -> None:
    parent, ckpt = _parent_ckpt(family, {"channels": [8, 16], "latent_dim": 4})
    torch.manual_seed(0)
    cnn = build_model("cnn", input_shape=SHAPE, num_classes=10, config={"channels": [8, 16]})
    fresh = {k: v.clone() for k, v in cnn.state_dict().items()}
    rng = torch.get_rng_state()
    done = transfer.transfer_weights(cnn, "cnn", transfer.Parent("p.pt", "p.pt", family, ckpt, "x"), "w")
    assert torch.equal(torch.get_rng_state(), rng)  # rebuilding the parent drew nothing from the seed

    # CNN body: [conv, bn, relu, conv, bn, relu, pool, drop] per block; encoder: [conv, bn, lrelu] per stage
    expected = {"body.0": "encoder.0", "body.1": "encoder.1", "body.8": "encoder.3", "body.9": "encoder.4"}
    theirs, ours = parent.state_dict(), cnn.state_dict()
    for mine, source in expected.items():
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            if f"{source}.{suffix}" in theirs:
                assert torch.equal(ours[f"{mine}.{suffix}"], theirs[f"{source}.{suffix}"]), mine
                assert done.mapped is not None and done.mapped[f"{mine}.{suffix}"] == f"{source}.{suffix}"
    assert "body.0.weight" in done.loaded and "body.8.weight" in done.loaded
    assert len(done.loaded) == 2 * (1 + 4 + 1)  # conv weight + BatchNorm (4 tensors + the step count)
    for key in ("body.3.weight", "body.4.weight", "head.weight", "head.bias"):  # second convs, the head
        assert torch.equal(ours[key], fresh[key]) and done.skipped[key] == "absent from the parent"
    assert any(key.startswith("decoder") for key in done.unused)


def test_encoder_with_other_channels_is_reported_not_loaded() -> None:
    _, ckpt = _parent_ckpt("autoencoder", {"channels": [4, 16], "latent_dim": 4})
    cnn = build_model("cnn", input_shape=SHAPE, num_classes=10, config={"channels": [8, 16]})
    done = transfer.transfer_weights(cnn, "cnn", transfer.Parent("p", "p", "autoencoder", ckpt, "x"), "w")
    assert done.skipped["body.0.weight"] == "shape (8, 1, 3, 3), parent (4, 1, 3, 3)"
    assert "body.0.weight" not in done.loaded and "body.1.weight" not in done.loaded


# -------------------------------------------------------------------------------- what trains
def _digits(n: int = 64, classes: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.random((n, *SHAPE), dtype=np.float32)
    y = np.arange(n, dtype=np.int64) % classes
    return {"train": (x, y), "val": (x[:16], y[:16])}


def test_frozen_weights_stay_as_loaded_after_training() -> None:
    torch.manual_seed(0)
    cnn = build_model("cnn", input_shape=SHAPE, num_classes=4, config={"channels": [8, 16]})
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, device="cpu", freeze=["body.0", "body.1"], patience=5)
    result = fit(cnn, _digits(), cfg)
    after = result.model.state_dict()
    for key in ("body.0.weight", "body.1.weight", "body.1.bias"):
        assert torch.equal(after[key], before[key]), key
        assert not dict(result.model.named_parameters())[key].requires_grad
    for key in ("body.3.weight", "body.8.weight", "head.weight"):
        assert not torch.equal(after[key], before[key]), key


def test_freeze_prefix_that_matches_nothing_lists_the_modules() -> None:
    cnn = build_model("cnn", input_shape=SHAPE, num_classes=4, config={"channels": [8]})
    with pytest.raises(transfer.TransferError) as err:
        transfer.freeze(cnn, ["bod"], "models.images-cnn.train.freeze")
    assert str(err.value) == (
        "models.images-cnn.train.freeze: 'bod' matches no parameter of the model; "
        "its top-level modules are ['body', 'dropout', 'head']"
    )
    with pytest.raises(transfer.TransferError, match="freezes every parameter"):
        transfer.freeze(cnn, ["body", "head"])


def test_head_lr_gives_the_head_its_own_param_group() -> None:
    cnn = build_model("cnn", input_shape=SHAPE, num_classes=4, config={"channels": [8]})
    plain = _optimizers(cnn, TrainConfig())
    assert len(plain[0].param_groups) == 1 and len(plain[0].param_groups[0]["params"]) == len(
        list(cnn.parameters())
    )
    transfer.freeze(cnn, ["body.0"])
    (opt,) = _optimizers(cnn, TrainConfig(lr=0.001, head_lr=0.02, freeze=["body.0"], init_from="champion"))
    body, head = opt.param_groups
    assert head["lr"] == 0.02 and {id(p) for p in head["params"]} == {id(p) for p in cnn.head.parameters()}
    assert body["lr"] == 0.001 and id(cnn.body[0].weight) not in {id(p) for p in body["params"]}
    assert len(body["params"]) == len(list(cnn.parameters())) - 2 - 1  # less the head and the frozen conv


def test_head_lr_follows_the_warmup_and_cosine_factor() -> None:
    cnn = build_model("cnn", input_shape=SHAPE, num_classes=4, config={"channels": [8]})
    seen: list[tuple[float, float]] = []
    step = torch.optim.AdamW.step

    def spy(self: torch.optim.AdamW, *args: Any, **kwargs: Any) -> Any:
        seen.append((self.param_groups[0]["lr"], self.param_groups[1]["lr"]))
        return step(self, *args, **kwargs)

    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.001, head_lr=0.01, warmup_epochs=1, device="cpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.AdamW, "step", spy)
        fit(cnn, _digits(), cfg)
    assert [round(head / body, 6) for body, head in seen] == [10.0] * 3  # one step an epoch
    assert seen[0][0] == pytest.approx(0.0005)  # warmup's first epoch: half the rate, both groups


# ------------------------------------------------------------------------------ sources, mismatch
def test_file_parent_with_another_number_of_classes_gets_a_fresh_head(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parent, ckpt = _parent_ckpt("cnn", {"channels": [8]}, num_classes=10)
    save_atomic(ckpt, tmp_path / "parents" / "cnn.pt")
    torch.manual_seed(3)
    child = build_model("cnn", input_shape=SHAPE, num_classes=3, config={"channels": [8]})
    head = child.head.weight.detach().clone()
    cfg = TrainConfig(init_from="parents/cnn.pt", freeze=["body"])
    with caplog.at_level(logging.INFO, logger="dlops.training.transfer"):
        tags, meta = _cnn_warm_start(child, cfg, tmp_path)
    sha = file_sha256(tmp_path / "parents" / "cnn.pt")
    assert (
        tags["init_from"] == "parents/cnn.pt" and tags["dlops.parent_model"] == f"parents/cnn.pt sha256:{sha}"
    )
    assert tags["init_from.skipped"] == "head.weight,head.bias"
    assert meta["model_sha256"] == sha and meta["skipped"] == ["head.weight", "head.bias"]
    assert "fresh tensors of another shape: head.weight (shape (3, 8), parent (10, 8))" in caplog.text
    assert torch.equal(child.head.weight, head)
    assert torch.equal(child.body[0].weight, parent.body[0].weight)


def test_explicit_sources_that_do_not_fit_are_errors(tmp_path: Path) -> None:
    _, ckpt = _parent_ckpt("mlp", {"hidden_sizes": [8]})
    save_atomic(ckpt, tmp_path / "mlp.pt")
    cnn = build_model("cnn", input_shape=SHAPE, num_classes=10, config={"channels": [8]})

    def start(init_from: str, freeze: list[str] | None = None) -> Any:
        return _cnn_warm_start(cnn, TrainConfig(init_from=init_from, freeze=freeze or []), tmp_path)

    with pytest.raises(transfer.TransferError, match=r"init_from: mlp.pt is a mlp model and this one a cnn"):
        start("mlp.pt")
    with pytest.raises(transfer.TransferError, match=r"models.images-cnn.train.init_from: .*missing.pt"):
        start("missing.pt")
    with pytest.raises(transfer.TransferError, match=r"models.images-cnn.train.freeze: 'encoder' matches no"):
        start("mlp.pt", ["encoder"])


def _cnn_warm_start(model: Any, cfg: TrainConfig, root: Path) -> Any:
    """pairs.parent.warm_start for the pair images-cnn, parents under `root`, no registry involved."""
    return parent_lib.warm_start(
        model, pair="images-cnn", family="cnn", train=cfg, mlflow_cfg=MlflowConfig(), root=root, dst=root
    )
