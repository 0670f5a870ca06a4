"""params.yaml is parsed once; every mistake names its key path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import REPO, tiny_params

from dlops.params import ConfigError, load_params, params_hash


def _load(tmp_path: Path, raw: dict[str, Any]) -> Any:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


def test_repo_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert "tabular" in params.tasks
    assert params.pair("tabular-mlp").family == "mlp"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("models.tabular-mlp.train.epocs", 3, "models.tabular-mlp.train.epochs"),
        ("tasks.tabular.ingest.rowz", 10, "tasks.tabular.ingest.rows"),
        ("tasks.tabular.preprocess.scalng", "standard", "tasks.tabular.preprocess.scaling"),
        ("mlfow", {}, "'mlflow'"),
    ],
)
def test_typo_names_key_and_closest_valid_key(tmp_path: Path, path: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, tiny_params(**{path: value}))
    assert path in str(err.value)
    assert "unknown key" in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (
            "models.tabular-mlp.train.lr",
            "fast",
            "models.tabular-mlp.train.lr: Input should be a valid number",
        ),
        ("models.tabular-mlp.train.epochs", 0, "models.tabular-mlp.train.epochs: Input should be greater"),
        ("models.tabular-mlp.gates.max_overfit_gap", 3, "models.tabular-mlp.gates.max_overfit_gap"),
        ("tasks.tabular.preprocess.split.train", 0.9, "train + val + test must be 1.0"),
        ("tasks.tabular.preprocess.scaling", "zscore", "tasks.tabular.preprocess.scaling"),
    ],
)
def test_wrong_type_or_range_names_key(tmp_path: Path, path: str, value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match="invalid parameters") as err:
        _load(tmp_path, tiny_params(**{path: value}))
    assert fragment in str(err.value)


def test_unknown_family_and_task_suggest_closest(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"models.tabular-mlp.family: unknown family 'mpl'.*Did you mean 'mlp'"
    ):
        _load(tmp_path, tiny_params(**{"models.tabular-mlp.family": "mpl"}))
    with pytest.raises(ConfigError, match=r"unknown task 'tabluar'.*Did you mean 'tabular'"):
        _load(tmp_path, tiny_params(**{"models.tabular-mlp.task": "tabluar"}))


def test_url_source_needs_pinned_hash(tmp_path: Path) -> None:
    raw = tiny_params()
    raw["tasks"]["tabular"]["ingest"] = {"source": "table", "url": "https://example.org/adult.csv"}
    with pytest.raises(ConfigError, match="sha256"):
        _load(tmp_path, raw)
    raw["tasks"]["tabular"]["ingest"] = {"source": "table", "url": "ftp://x/y.csv", "sha256": "a" * 64}
    with pytest.raises(ConfigError, match="http"):
        _load(tmp_path, raw)


def test_column_in_two_roles_is_refused(tmp_path: Path) -> None:
    raw = tiny_params()
    raw["tasks"]["tabular"]["columns"]["categorical"].append("age")
    with pytest.raises(
        ConfigError, match="tasks.tabular.columns: column 'age' is both categorical and numeric"
    ):
        _load(tmp_path, raw)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("tasks: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("models:\n  x:\n    train: {lr: 0.003}\n    train: {lr: 0.9}\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'train' \(line 4; first given on line 3\)") as err:
        load_params(tmp_path / "params.yaml")
    assert str(tmp_path / "params.yaml") in str(err.value)
    assert err.value.exit_code == 65  # bad input


def test_params_hash_is_stable_and_sensitive() -> None:
    params = load_params(REPO / "params.yaml")
    entry = params.pair("tabular-mlp")
    assert params_hash(entry) == params_hash(entry.model_dump(mode="json", by_alias=True))
    assert params_hash({"a": 1}) != params_hash({"a": 2})


# -------------------------------------------------------------------------------------------- images
def test_the_repo_params_declare_the_images_task_and_every_image_family() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.task("images").kind == "images"
    families = {params.pair(name).family for name in params.models if params.pair(name).task == "images"}
    assert families == {"mlp", "cnn", "autoencoder", "vae", "gan"}


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("tasks.images.ingest.sise", 8, "tasks.images.ingest.size"),  # typo inside the digits source
        ("tasks.images.augment.degreez", 5, "tasks.images.augment.degrees"),
        ("tasks.images.ingest.size", 2, "tasks.images.ingest.size"),
    ],
)
def test_image_task_errors_name_the_key(tmp_path: Path, path: str, value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, tiny_params(images=True, **{path: value}))
    assert fragment in str(err.value)


def test_a_family_on_the_wrong_task_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models.tabular-mlp.family: 'cnn' does not run on tabular"):
        _load(tmp_path, tiny_params(**{"models.tabular-mlp.family": "cnn"}))


def test_the_primary_metric_must_be_one_the_family_measures(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"images-gan.gates.primary_metric: 'accuracy' is not measured"):
        _load(tmp_path, tiny_params(images=True, **{"models.images-gan.gates.primary_metric": "accuracy"}))


def test_a_classifier_on_a_task_with_groups_must_gate_fairness(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_demographic_parity_difference: must be set"):
        _load(tmp_path, tiny_params(**{"models.tabular-mlp.gates.max_demographic_parity_difference": None}))


def test_a_generator_needs_a_judge(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models.images-gan.evaluate.judge: a gan needs a judge"):
        _load(tmp_path, tiny_params(images=True, **{"models.images-gan.evaluate.judge": None}))


def test_sections_dvc_reads_must_be_written_out(tmp_path: Path) -> None:
    raw = tiny_params()
    del raw["models"]["tabular-mlp"]["evaluate"]
    with pytest.raises(ConfigError, match=r"models.tabular-mlp.evaluate: Field required"):
        _load(tmp_path, raw)


POST = {"constraint": "equalized_odds", "attributes": ["sex"]}


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (
            "models.tabular-mlp.train.reweigh",
            ["sex", "age"],
            "train.reweigh: ['age'] not among the sensitive",
        ),
        ("models.tabular-mlp.evaluate.postprocess", {**POST, "attributes": ["rase"]}, "['rase'] not among"),
        ("models.tabular-mlp.evaluate.postprocess", {**POST, "tol": 0.05}, "relaxes demographic parity only"),
        ("models.tabular-mlp.evaluate.postprocess", {**POST, "constraint": "parity"}, "constraint"),
        ("models.tabular-mlp.gates.promotion_test", "t-test", "promotion_test"),
        ("models.tabular-mlp.gates.fairness_rule", "lenient", "fairness_rule"),
        ("models.tabular-mlp.gates.control", "max_memberhip_auc", "'max_memberhip_auc' is not a gate"),
        ("models.tabular-mlp.gates.control", "max_class_recall_gap", "gates.max_class_recall_gap is null"),
        ("models.tabular-mlp.train.max_rows", 0, "max_rows"),
    ],
)
def test_mitigation_and_decision_policy_errors_name_the_key(
    tmp_path: Path, path: str, value: Any, fragment: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, tiny_params(**{path: value}))
    assert fragment in str(err.value) and path.rsplit(".", 1)[0].split(".", 1)[1] in str(err.value)


def test_mitigation_is_refused_on_images(tmp_path: Path) -> None:
    raw = tiny_params(images=True, **{"models.images-cnn.train.reweigh": ["sex"]})
    with pytest.raises(
        ConfigError, match=r"images-cnn.train.reweigh: mitigation applies to tabular and text"
    ):
        _load(tmp_path, raw)


# -------------------------------------------------------------------------------------- model sections
@pytest.mark.parametrize(
    ("path", "value", "fragments"),
    [
        (
            "models.tabular-mlp.model.hiden_sizes",
            [32],
            [
                "models.tabular-mlp.model.hiden_sizes: unknown key",
                "valid keys of family 'mlp': batch_norm, dropout, hidden_sizes",
                "did you mean 'models.tabular-mlp.model.hidden_sizes'?",
            ],
        ),
        (
            "models.images-gan.evaluate.judge.model.chanels",
            [8],
            ["images-gan.evaluate.judge.model.chanels: unknown key", "valid keys of family 'cnn'"],
        ),
        ("models.text-rnn.model.vocab_size", 100, ["models.text-rnn.model.vocab_size: the pipeline sets it"]),
        ("models.images-cnn.model.num_classes", 10, ["models.images-cnn.model.num_classes: the pipeline"]),
    ],
)
def test_a_typo_in_a_model_section_names_the_key_and_the_valid_ones(
    tmp_path: Path, path: str, value: Any, fragments: list[str]
) -> None:
    with pytest.raises(ConfigError, match="invalid parameters") as err:
        _load(tmp_path, tiny_params(images=True, **{path: value}))
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (
            "models.tabular-mlp.model.hidden_sizes",
            "128",
            "hidden_sizes: must be a list of integers, got '128'",
        ),
        ("models.tabular-mlp.model.dropout", "high", "dropout: must be a number, got 'high'"),
        ("models.tabular-mlp.model.batch_norm", 1, "batch_norm: must be true or false, got 1"),
        ("models.images-vae.model.latent_dim", 8.5, "latent_dim: must be an integer, got 8.5"),
        ("models.images-autoencoder.model.normal_classes", 3, "must be a list of integers or null, got 3"),
        ("models.text-rnn.model.cell", 1, "models.text-rnn.model.cell: must be a string, got 1"),
    ],
)
def test_a_wrong_type_in_a_model_section_names_the_key(
    tmp_path: Path, path: str, value: Any, fragment: str
) -> None:
    with pytest.raises(ConfigError, match="invalid parameters") as err:
        _load(tmp_path, tiny_params(images=True, **{path: value}))
    assert fragment in str(err.value) and path.split(".", 1)[1] in str(err.value)


def test_model_sections_take_null_and_integers_for_numbers(tmp_path: Path) -> None:
    raw = tiny_params(images=True, **{"models.images-vae.model.beta": 2})
    raw["models"]["images-autoencoder"]["model"]["normal_classes"] = None
    params = _load(tmp_path, raw)
    assert params.pair("images-vae").model["beta"] == 2


def test_the_default_params_load_without_importing_torch() -> None:
    """Every stage loads params.yaml: checking the model sections must not import a family (and torch)."""
    code = (
        "import sys; from dlops.params import load_params; "
        f"params = load_params(__import__('pathlib').Path({str(REPO / 'params.yaml')!r})); "
        "assert params.models and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "DLOPS_ROOT": str(REPO)})


def test_a_forecaster_is_checked_against_its_series_task(tmp_path: Path) -> None:
    assert _load(tmp_path, tiny_params(series=True)).task("series").season_length() == 24
    with pytest.raises(ConfigError, match=r"series-rnn.family: 'cnn' does not run on timeseries"):
        _load(tmp_path, tiny_params(series=True, **{"models.series-rnn.family": "cnn"}))
    with pytest.raises(
        ConfigError, match=r"series-rnn.gates.primary_metric: 'accuracy' is not measured.*forecast_skill"
    ):
        _load(tmp_path, tiny_params(series=True, **{"models.series-rnn.gates.primary_metric": "accuracy"}))
    with pytest.raises(
        ConfigError, match=r"series-mlp.gates.max_group_error_gap: task 'series' has no columns"
    ):
        _load(tmp_path, tiny_params(series=True, **{"tasks.series.columns.sensitive": []}))
    with pytest.raises(ConfigError, match=r"tasks.series.ingest.frequency"):
        _load(tmp_path, tiny_params(series=True, **{"tasks.series.ingest.frequency": "fortnightly"}))
    table = {"source": "series-table", "path": "x.csv", "frequency": "weekly"}
    with pytest.raises(ConfigError, match="frequency 'weekly' is not one of the pandas offset aliases"):
        _load(tmp_path, tiny_params(series=True, **{"tasks.series.ingest": table}))
