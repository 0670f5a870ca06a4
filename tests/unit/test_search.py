"""The search space in params.yaml (validated at load, naming the key), the values a trial applies, and
the summary `train` reads: best trial, params.yaml's own score, the improvement."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from tests.conftest import tiny_params

from dlops.params import ConfigError, load_params
from dlops.search import apply, current_values, suggest, summary

SPACE = {"train.lr": {"low": 0.0003, "high": 0.03, "log": True}, "model.dropout": {"low": 0.0, "high": 0.5}}


def params_with(tmp_path: Path, pair: str = "tabular-mlp", images: bool = False, **search: Any) -> Any:
    raw = copy.deepcopy(tiny_params(images=images))
    raw["models"][pair]["search"] = {"trials": 4, "space": SPACE, **search}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(path)


def refused(tmp_path: Path, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        params_with(tmp_path, **kwargs)
    return str(caught.value)


def test_a_valid_space_loads(tmp_path: Path) -> None:
    entry = params_with(tmp_path).pair("tabular-mlp")
    assert entry.search.direction == "minimize"
    assert current_values(entry, entry.search) == {"train.lr": 0.003, "model.dropout": 0.1}


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"train.momentum": {"low": 0.1, "high": 0.9}}, "search.space.train.momentum: not searchable"),
        ({"model.width": {"low": 1, "high": 9}}, "search.space.model.width: not searchable"),
        ({"train.lr": {"low": 0.01, "high": 0.1}}, "the current value 0.003 must lie in [0.01, 0.1]"),
        ({"model.hidden_sizes": {"choices": [[64]]}}, "the current value [32] must be one of the choices"),
        ({"train.batch_size": {"low": 16.0, "high": 256.0}}, "an integer setting"),
        ({"train.lr": {"low": 0.1, "high": 0.01}}, "low (0.1) must be below high (0.01)"),
        ({"train.lr": {"low": 0.0, "high": 0.01, "log": True}}, "a log scale needs low > 0"),
        ({"train.lr": {"low": 0.001}}, "needs low and high (a range) or choices"),
        ({}, "search.space"),
    ],
)
def test_a_bad_space_is_refused_naming_the_key(tmp_path: Path, space: dict[str, Any], expected: str) -> None:
    message = refused(tmp_path, space=space)
    assert "models.tabular-mlp.search" in message
    assert expected in message


def test_families_without_the_objective_are_refused(tmp_path: Path) -> None:
    gan = refused(tmp_path, pair="images-gan", images=True, space={"train.lr": {"low": 1e-4, "high": 1e-3}})
    assert "models.images-gan.search: a gan has no validation score to search on" in gan
    autoencoder = refused(
        tmp_path,
        pair="images-autoencoder",
        images=True,
        objective="val/accuracy",
        space={"train.lr": {"low": 1e-4, "high": 1e-2}},
    )
    assert (
        "models.images-autoencoder.search.objective: val/accuracy is measured for classifiers" in autoencoder
    )


def test_apply_puts_the_values_in_train_and_model_and_validates_them(tmp_path: Path) -> None:
    entry = params_with(tmp_path).pair("tabular-mlp")
    tuned = apply(entry, {"train.lr": 0.01, "model.dropout": 0.3, "model.hidden_sizes": [64, 32]})
    assert (
        tuned.train.lr == 0.01 and tuned.model["dropout"] == 0.3 and tuned.model["hidden_sizes"] == [64, 32]
    )
    assert entry.train.lr == 0.003 and entry.model["dropout"] == 0.1  # the params entry is untouched
    with pytest.raises(ValueError, match="lr"):
        apply(entry, {"train.lr": -1.0})


def test_suggest_turns_list_choices_back_into_lists(tmp_path: Path) -> None:
    space = {
        **SPACE,
        "model.hidden_sizes": {"choices": [[32], [64, 32]]},
        "train.batch_size": {"low": 64, "high": 256},
    }
    entry = params_with(tmp_path, space=space).pair("tabular-mlp")
    trial = optuna.trial.FixedTrial(
        {"train.lr": 0.01, "model.dropout": 0.2, "model.hidden_sizes": "[64, 32]", "train.batch_size": 128}
    )
    values = suggest(trial, entry.search.space)
    assert values == {
        "train.lr": 0.01,
        "model.dropout": 0.2,
        "model.hidden_sizes": [64, 32],
        "train.batch_size": 128,
    }
    assert isinstance(values["train.batch_size"], int)


def _study(direction: str, values: list[float]) -> optuna.Study:
    import json

    study = optuna.create_study(direction=direction)
    for number, value in enumerate(values):
        attrs = {"dlops.values": json.dumps({"train.lr": 0.001 * (number + 1)}), "dlops.default": number == 0}
        study.add_trial(
            optuna.trial.create_trial(
                params={"train.lr": 0.001 * (number + 1)},
                distributions={"train.lr": optuna.distributions.FloatDistribution(1e-4, 1.0)},
                value=value,
                user_attrs=attrs,
            )
        )
    return study


def test_summary_takes_the_earliest_best_trial_and_measures_the_gain_over_the_defaults(
    tmp_path: Path,
) -> None:
    entry = params_with(tmp_path, space={"train.lr": {"low": 0.0001, "high": 1.0}}).pair("tabular-mlp")
    low = summary(_study("minimize", [0.5, 0.3, 0.4, 0.3]), entry, "s")
    assert low["best"] == {"trial": 1, "value": 0.3, "params": {"train.lr": 0.002}}
    assert low["default"]["value"] == 0.5 and low["improvement"] == pytest.approx(0.2)
    assert low["trials"] == {"total": 4, "complete": 4, "pruned": 0, "fail": 0}
    high_entry = entry.model_copy(
        update={"search": entry.search.model_copy(update={"objective": "val/accuracy"})}
    )
    high = summary(_study("maximize", [0.8, 0.9, 0.7]), high_entry, "s")
    assert high["best"]["trial"] == 1 and high["improvement"] == pytest.approx(0.1)


@pytest.mark.parametrize("init_from", ["champion", "models:/dlops-tabular-mlp@champion"])
def test_a_search_from_a_moving_parent_is_refused(tmp_path: Path, init_from: str) -> None:
    raw = copy.deepcopy(tiny_params())
    raw["models"]["tabular-mlp"]["train"]["init_from"] = init_from
    raw["models"]["tabular-mlp"]["search"] = {"trials": 4, "space": SPACE}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError, match=r"models.tabular-mlp.search: train.init_from .* moves"):
        load_params(path)
