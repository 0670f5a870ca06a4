"""A real-shaped public table through the whole DAG by params alone: a UCI census-income (Adult) file.

The test writes the file itself in the UCI layout (no header, ", " separators, " ?" for missing, the
Adult column names and category spellings); its rows come from the seeded generator, so the signal
is learnable and the run is offline. Nothing but params.yaml changes: no code, no suite written by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import make_project, tiny_params
from tests.integration.test_pipeline import client, dvc

pytestmark = pytest.mark.slow

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
    "income",
]  # fmt: skip
EDUCATION = [
    "Preschool", "1st-4th", "5th-6th", "7th-8th", "9th", "10th", "11th", "12th", "HS-grad",
    "Some-college", "Assoc-voc", "Assoc-acdm", "Bachelors", "Masters", "Prof-school", "Doctorate",
]  # fmt: skip
RENAME = {
    "workclass": {"Self-emp": "Self-emp-not-inc", "Government": "State-gov"},
    "occupation": {"Machine-op": "Machine-op-inspct", "Service": "Other-service"},
    "marital_status": {"Married": "Married-civ-spouse"},
    "race": {"Asian": "Asian-Pac-Islander"},
}


def write_adult_file(path: Path, rows: int = 5000, seed: int = 3, test: bool = False) -> None:
    """An Adult-layout file (as adult.data is published) whose labels follow the synthetic model; `test`
    writes it as adult.test is published: a first line to skip and labels with a trailing dot."""
    from dlops.kinds.tabular.synthetic import generate_income
    from dlops.params import SyntheticIncomeSource

    src = generate_income(SyntheticIncomeSource(source="synthetic-income", rows=rows, seed=seed))
    rng = np.random.default_rng(seed)
    married = src["marital_status"] == "Married"
    spouse = np.where(src["sex"] == "Male", "Husband", "Wife")
    countries, shares = ["United-States", "Mexico", "Philippines", None], [0.9, 0.04, 0.04, 0.02]
    edu_num = src["education_years"].clip(1, 16)
    table = pd.DataFrame(
        {
            "age": src["age"],
            "workclass": src["workclass"].replace(RENAME["workclass"]),
            "fnlwgt": rng.integers(12_285, 1_484_705, rows),
            "education": edu_num.map(lambda v: None if pd.isna(v) else EDUCATION[int(v) - 1]),
            "education-num": edu_num,
            "marital-status": src["marital_status"].replace(RENAME["marital_status"]),
            "occupation": src["occupation"].replace(RENAME["occupation"]),
            "relationship": np.where(married, spouse, "Not-in-family"),
            "race": src["race"].replace(RENAME["race"]),
            "sex": src["sex"],
            "capital-gain": src["capital_gain"],
            "capital-loss": np.where(rng.random(rows) < 0.05, rng.integers(155, 4357, rows), 0),
            "hours-per-week": src["hours_per_week"],
            "native-country": rng.choice(countries, rows, p=shares),
            "income": src["income"],
        }
    )  # fmt: skip
    lines = (", ".join(_cell(v) for v in row) for row in table[ADULT_COLUMNS].itertuples(index=False))
    if test:
        table["income"] = table["income"] + "."
        lines = (", ".join(_cell(v) for v in row) for row in table[ADULT_COLUMNS].itertuples(index=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("|1x3 Cross validator\n" * test + "\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "?"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def census_params() -> dict[str, Any]:
    """params.yaml as the README's census example writes it (a small MLP, few epochs)."""
    base = tiny_params()
    model = base["models"]["tabular-mlp"]
    base["tasks"] = {
        "census": {
            "kind": "tabular",
            "ingest": {
                "source": "table",
                "path": "data/external/adult.data",
                "format": "csv",
                "csv_options": {"header": None, "names": ADULT_COLUMNS, "na_values": ["?"]},
                "test": {  # the official test file, as published
                    "path": "data/external/adult.test",
                    "format": "csv",
                    "csv_options": {
                        "header": None,
                        "names": ADULT_COLUMNS,
                        "na_values": ["?"],
                        "skiprows": 1,
                    },
                    "replace": {"income": {">50K.": ">50K", "<=50K.": "<=50K"}},
                },
            },
            "columns": {
                "target": "income",
                "positive_label": ">50K",
                "sensitive": ["sex", "race"],
                "numeric": ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"],
                "categorical": [
                    "workclass",
                    "marital-status",
                    "occupation",
                    "relationship",
                    "native-country",
                ],
                "ignored": ["fnlwgt", "education"],
            },
            "validate": base["tasks"]["tabular"]["validate"]
            | {"suite": "expectations/census.json", "draft_if_missing": True},
            "preprocess": base["tasks"]["tabular"]["preprocess"],
            "augment": base["tasks"]["tabular"]["augment"],
        }
    }
    base["models"] = {"census-mlp": model | {"task": "census"}}
    base["retrain"]["batches"] = {}  # retrain.batches may name only tasks that exist
    base["pretraining"] = {}  # and pretraining only models that exist
    return base


def test_a_census_income_file_runs_through_the_whole_dag_by_params_alone(tmp_path: Path) -> None:
    import mlflow

    root = make_project(tmp_path / "census", census_params())
    (root / "expectations" / "tabular.json").unlink()  # only the new task's suite matters here
    write_adult_file(root / "data" / "external" / "adult.data")
    write_adult_file(root / "data" / "external" / "adult.test", rows=1500, seed=4, test=True)

    proc = dvc(root, "repro")
    assert "drafted" in proc.stderr and (root / "expectations" / "census.json").is_file()
    name = "dlops-census-mlp"
    champion = client(root).get_model_version_by_alias(name, "champion")
    assert champion.tags["decision"] == "promoted"
    # the official test file is the test split, whole; val is carved from adult.data
    split = json.loads((root / "data/processed/census/transform.json").read_text())["split"]
    assert split["how"] == "given" and split["sizes"]["test"] == 1500
    assert split["sizes"]["train"] + split["sizes"]["val"] == 5000
    assert champion.tags["data.split"].startswith("given by test: sub-source, val carved from train")
    metrics = json.loads((root / "reports/evaluate/census-mlp/metrics.json").read_text())
    assert metrics["test/n"] == 1500
    # an official test file: the overfit gate reads train − val, val − test is reported as shift
    assert metrics["overfit/gap_basis"] == "train - val (test split given)"
    assert metrics["overfit/primary_gap"] == metrics["overfit/primary_gap_train_val"]
    shift = metrics["val/balanced_accuracy"] - metrics["test/balanced_accuracy"]
    assert metrics["shift/primary_gap_val_test"] == pytest.approx(shift, abs=1e-6)
    # integer-valued features repeat across different people: reported, kept in one split, not failed
    summary = json.loads((root / "reports/validate/census/summary.json").read_text())
    assert summary["feature_duplicates"]["rows"] > 0

    raw = pd.read_parquet(root / "data/raw/census.parquet")
    assert "fnlwgt" not in raw.columns and raw["workclass"].isna().any()  # ignored column, " ?" as missing
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    rows = raw.drop(columns=["income", "__record", "__split"]).head(5)
    numeric = rows.select_dtypes("number").columns
    # The signature declares numeric columns float64 so a later row with a missing value still fits;
    # MLflow refuses to cast int64 to float64 itself, so callers pass floats.
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    out = model.predict(rows.astype(dict.fromkeys(numeric, "float64")))
    assert set(out["prediction"]) <= {"<=50K", ">50K"}
    assert "up to date" in dvc(root, "repro").stdout
