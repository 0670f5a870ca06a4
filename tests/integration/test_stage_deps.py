"""DVC sees exactly what each stage reads: the user's input files and the code of the task's own kind.

A project with a tabular task read from a CSV (data/input/income.csv) and a text task, one model each,
runs to the end; then appending a row to the CSV makes exactly the tabular task's ingest stale, and an
edit to the text kind's package makes exactly the text task's stages and its model's stages stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import make_project, project_env, tiny_params
from tests.integration.test_pipeline import dvc

pytestmark = pytest.mark.slow


def _params() -> dict:  # type: ignore[type-arg]
    raw = tiny_params(images=True)
    raw["tasks"] = {"tabular": raw["tasks"]["tabular"], "text": raw["tasks"]["text"]}
    raw["tasks"]["tabular"]["ingest"] = {"source": "table", "path": "data/input/income.csv"}
    raw["models"] = {"tabular-mlp": raw["models"]["tabular-mlp"], "text-rnn": raw["models"]["text-rnn"]}
    gates = raw["models"]["tabular-mlp"]["gates"] = dict(raw["models"]["tabular-mlp"]["gates"])
    for gate in ("max_demographic_parity_difference", "max_equalized_odds_difference", "max_overfit_gap"):
        gates[gate] = 1.0  # 3,000 rows: this test is about what DVC watches, not about the gates
    raw["pretraining"] = {}
    raw["retrain"]["batches"] = {}
    return raw


@pytest.fixture(scope="module")
def two_kinds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after `dvc repro`, each stage recording the dlops modules it imported (in ../imports)."""
    import subprocess

    from tests.projects import bin_path

    from dlops.kinds.tabular.synthetic import generate_income
    from dlops.params import SyntheticIncomeSource

    root = tmp_path_factory.mktemp("deps") / "project"
    table = generate_income(SyntheticIncomeSource(source="synthetic-income", rows=3000, seed=7))
    (root / "data" / "input").mkdir(parents=True)
    table.to_csv(root / "data" / "input" / "income.csv", index=False)
    make_project(root, _params())
    env = {**project_env(root), "DLOPS_RECORD_IMPORTS": str(root.parent / "imports")}
    proc = subprocess.run([bin_path("dvc"), "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def _stale(root: Path) -> set[str]:
    proc = dvc(root, "status", "--json")
    return {stage.split(":")[-1] for stage in json.loads(proc.stdout or "{}")}


def test_the_dag_is_up_to_date_after_the_run(two_kinds: Path) -> None:
    assert _stale(two_kinds) == set()


def test_appending_to_an_input_file_makes_exactly_its_task_stale(two_kinds: Path) -> None:
    csv = two_kinds / "data" / "input" / "income.csv"
    before = csv.read_bytes()
    try:
        last = before.rstrip(b"\n").split(b"\n")[-1]
        csv.write_bytes(before + last + b"\n")  # one more row, like a user's appended record
        assert _stale(two_kinds) == {"ingest@tabular"}
    finally:
        csv.write_bytes(before)
    assert _stale(two_kinds) == set()


def test_editing_a_kind_makes_exactly_its_tasks_and_models_stale(two_kinds: Path) -> None:
    code = two_kinds / "src" / "dlops" / "kinds" / "text" / "__init__.py"
    before = code.read_text()
    try:
        code.write_text(before + "# an edit of the text kind\n")
        stale = _stale(two_kinds)
    finally:
        code.write_text(before)
    text_stages = {f"{s}@text" for s in ("ingest", "validate", "preprocess")}
    text_model = {f"{s}@text-rnn" for s in ("train", "evaluate", "register")}  # no search: no search@
    assert stale == text_stages | text_model
    assert not any(s.endswith(("@tabular", "@tabular-mlp")) for s in stale)


def test_every_dlops_module_a_stage_imported_is_in_its_deps(two_kinds: Path) -> None:
    from tests.projects import uncovered_imports

    records = two_kinds.parent / "imports"
    assert len(list(records.glob("*@*.json"))) == 3 * 2 + 3 * 2  # every stage of both tasks and models
    assert uncovered_imports(two_kinds, records) == {}
