"""`dlops add-task NAME --from FILE`: params.yaml entries from a file's columns, its comments kept, the
suite drafted, and every file put back when a step fails."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.projects import REPO
from typer.testing import CliRunner

from dlops.cli import app
from dlops.params import load_params

runner = CliRunner()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project folder with the repo's hand-commented params.yaml (nothing is trained here)."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def people_csv(path: Path, rows: int = 600, label: str = "outcome") -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "person_id": np.arange(rows),
        "age": rng.integers(18, 80, rows),
        "sex": rng.choice(["F", "M"], rows),
        "race": rng.choice(["a", "b", "c"], rows),
        "hours": rng.normal(40, 5, rows).round(1),
        "job": rng.choice(["x", "y", "z"], rows),
        label: np.where(rng.random(rows) < 0.3, "yes", "no"),
    })  # fmt: skip
    frame.to_csv(path, index=False)
    return path


def add(root: Path, *args: str) -> object:
    return runner.invoke(app, ["--root", str(root), "add-task", *args])


def snapshot(root: Path) -> dict[str, bytes | None]:
    files = ("params.yaml", "dag.yaml", "reports/dvc.yaml")
    return {f: (root / f).read_bytes() if (root / f).is_file() else None for f in files}


def test_csv_with_label_sensitive_and_id_columns(root: Path) -> None:
    people_csv(root / "people.csv")
    before = (root / "params.yaml").read_text()
    result = add(root, "people", "--from", str(root / "people.csv"))
    assert result.exit_code == 0, result.output
    assert "sensitive columns (inferred, measured for fairness): sex, race" in result.output
    assert "dlops run" in result.output
    after = (root / "params.yaml").read_text()
    comments = [line for line in before.splitlines() if "#" in line]
    assert all(line in after.splitlines() for line in comments)  # every hand-written comment kept
    params = load_params(root / "params.yaml")
    columns = params.task("people").columns
    assert columns.target == "outcome" and columns.positive_label == "yes"  # the rarer class
    assert columns.sensitive == ["sex", "race"] and columns.ignored == ["person_id"]
    assert sorted(columns.numeric) == ["age", "hours"] and columns.categorical == ["job"]
    assert params.task("people").ingest.path == "people.csv"
    assert params.task("people").validate_.min_rows == 600  # lowered to what the file holds
    entry = params.pair("people-mlp")
    assert entry.task == "people" and entry.search is None
    assert entry.gates.max_demographic_parity_difference is not None
    assert (root / "expectations" / "people.json").is_file()
    assert (root / "data" / "raw" / "people.parquet").is_file()
    assert "people" in yaml.safe_load((root / "dag.yaml").read_text())["dag"]["tasks"]


def test_no_label_column_exits_65_naming_the_columns(root: Path) -> None:
    people_csv(root / "people.csv", label="result")
    before = snapshot(root)
    result = add(root, "people", "--from", str(root / "people.csv"))
    assert result.exit_code == 65, result.output
    assert "person_id" in result.output and "--label" in result.output
    assert snapshot(root) == before


def test_label_option_and_no_sensitive_columns_turn_fairness_gates_off(root: Path) -> None:
    people_csv(root / "people.csv", label="result")
    result = add(root, "people", "--from", str(root / "people.csv"), "--label", "result", "--sensitive", "")
    assert result.exit_code == 0, result.output
    params = load_params(root / "params.yaml")
    assert params.task("people").columns.sensitive == []
    assert params.pair("people-mlp").gates.max_demographic_parity_difference is None


def test_free_text_column_makes_a_text_task(root: Path) -> None:
    rng = np.random.default_rng(1)
    words = ["good", "bad", "film", "plot", "actor", "scene", "slow", "great", "boring", "fun"]
    texts = [" ".join(rng.choice(words, 12)) + f" review {i}" for i in range(300)]
    pd.DataFrame({"review": texts, "label": rng.choice(["pos", "neg"], 300)}).to_csv(
        root / "reviews.csv", index=False
    )
    result = add(root, "reviews", "--from", str(root / "reviews.csv"))
    assert result.exit_code == 0, result.output
    params = load_params(root / "params.yaml")
    task = params.task("reviews")
    assert task.kind == "text" and task.ingest.source == "text-table"
    assert task.ingest.text_column == "review" and task.ingest.label_column == "label"
    assert {"reviews-rnn", "reviews-transformer", "reviews-mlp"} <= set(params.models)
    assert (root / "expectations" / "reviews.json").is_file()


@pytest.mark.parametrize("name", ["tabular", "tabular-mlp", "Bad_Name"])
def test_a_taken_or_bad_name_changes_nothing(root: Path, name: str) -> None:
    people_csv(root / "people.csv")
    before = snapshot(root)
    result = add(root, name, "--from", str(root / "people.csv"))
    assert result.exit_code == 65, result.output
    assert snapshot(root) == before and not (root / "expectations").exists()


def test_a_failing_ingest_puts_every_file_back(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlops import dag, stages
    from dlops.data.inputs import DataSourceError
    from dlops.params import paths

    dag.write(load_params(root / "params.yaml"), paths(root))  # dag.yaml and reports/dvc.yaml exist
    people_csv(root / "people.csv")
    before = snapshot(root)

    def broken(task: str, root: Path | None = None, force: bool = False) -> Path:
        (paths(root).raw(task)).parent.mkdir(parents=True, exist_ok=True)
        paths(root).raw(task).write_bytes(b"half")
        raise DataSourceError("people.csv: column 'job' broke")

    monkeypatch.setattr(stages, "draft_expectations", broken)
    result = add(root, "people", "--from", str(root / "people.csv"))
    assert result.exit_code == 65 and "column 'job' broke" in result.output
    assert snapshot(root) == before
    assert not (root / "data" / "raw" / "people.parquet").exists()
    assert not (root / "expectations" / "people.json").exists()


def test_jsonl_without_free_text_says_it_is_read_as_text_only(root: Path) -> None:
    pd.DataFrame({"x": [1, 2, 3], "label": ["a", "b", "a"]}).to_json(
        root / "rows.jsonl", orient="records", lines=True
    )
    result = add(root, "rows", "--from", str(root / "rows.jsonl"))
    assert result.exit_code == 65 and "text task only" in result.output


def test_idx_images_without_labels_file_names_what_it_looked_for(root: Path) -> None:
    (root / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03")
    result = add(root, "digits", "--from", str(root / "train-images-idx3-ubyte"))
    assert result.exit_code == 65 and "train-labels-idx1-ubyte" in result.output


def test_a_relative_path_is_read_from_the_current_directory(root: Path, monkeypatch) -> None:  # noqa: ANN001
    (root / "data/external").mkdir(parents=True)
    people_csv(root / "data/external/people.csv")
    monkeypatch.chdir(root)
    result = runner.invoke(app, ["add-task", "people", "--from", "data/external/people.csv"])
    assert result.exit_code == 0, result.output
    task = yaml.safe_load((root / "params.yaml").read_text())["tasks"]["people"]
    assert task["ingest"]["path"] == "data/external/people.csv"


def test_a_kind_params_yaml_lacks_gets_the_kinds_built_in_task_and_model(tmp_path: Path) -> None:
    """No tabular task or model to copy: the tabular kind's own `new_task` template (kinds/tabular)."""
    from dlops import add_task as adding
    from dlops.add_task_inference import Choices

    (tmp_path / "params.yaml").write_text(
        "tasks:\n  words:\n    kind: text\nmodels:\n  words-rnn:\n    family: rnn\n    task: words\n"
    )
    people_csv(tmp_path / "people.csv")
    planned = adding.plan("people", tmp_path / "people.csv", Choices(), tmp_path)
    assert any("no tabular task to copy" in note for note in planned.notes)
    assert planned.task["preprocess"] == {
        "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0},
        "scaling": "standard",
        "max_categories": 50,
    }
    assert planned.task["validate"]["min_rows"] == 500  # the file's 600 rows pass: not lowered
    entry = planned.models["people-mlp"]
    assert entry["model"] == {"hidden_sizes": [128, 64], "dropout": 0.1}
    assert entry["gates"]["primary_metric"] == "balanced_accuracy"
    assert yaml.safe_load(planned.after)["models"]["people-mlp"]["task"] == "people"


def test_add_task_drafts_the_kinds_that_carry_a_template(root: Path) -> None:
    from dlops import add_task as adding

    assert adding.drafted_kinds() == ["images", "tabular", "text"]  # not timeseries: no `new_task`
    people_csv(root / "people.csv")
    result = add(root, "people", "--from", str(root / "people.csv"), "--kind", "timeseries")
    assert result.exit_code != 0 and "--kind must be one of images, tabular, text" in result.output
