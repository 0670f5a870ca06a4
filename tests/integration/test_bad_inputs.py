"""The bad-input corpus: every case stops the pipeline with a non-zero exit and a message naming the
file, column, line or key; no version is registered, and the champions, the accepted data and the
user's input files stay as they were.

One baseline project (DVC, its first `dlops run` done) reads real files (a CSV table, an NPZ of images,
a JSONL of reviews) and has a registered champion per task. Each case copies it, breaks one thing, and
runs the stages in DAG order in-process (`dlops ingest ... register`) until one exits non-zero, and
`dlops run` on another copy.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import bin_path, make_project, mlflow_uris_restored, project_env, tiny_params
from tests.integration.corpus_inputs import CASES, Case, make_writable_again, write_inputs
from tests.integration.corpus_outcomes import OUTCOME_CASES
from tests.integration.corpus_serving import IMAGES, REQUESTS, TABLE, TEXT, Request, _rows, _with
from tests.integration.rest_server import answer_frame, frame_body, invoke, served, tensor_body
from typer.testing import CliRunner

from dlops.errors import EXIT_REJECTED

pytestmark = pytest.mark.slow

PAIRS = {"tabular": "tabular-mlp", "images": "images-mlp", "text": "text-mlp"}
STAGES = ("ingest", "validate", "preprocess", "search", "train", "evaluate", "register")


@dataclass
class Outcome:
    stage: str | None  # the stage that exited non-zero, or None when every stage passed
    exit_code: int = 0
    message: str = ""
    passed: list[str] = field(default_factory=list)


def run_stages(root: Path, task: str, env: dict[str, str] | None = None, until: str | None = None) -> Outcome:
    """The task's stages in DAG order, in-process, stopping at the first non-zero exit (or after `until`)."""
    from dlops.cli import app

    runner = CliRunner()
    outcome = Outcome(stage=None)
    for stage in STAGES:
        target = task if stage in ("ingest", "validate", "preprocess") else PAIRS[task]
        result = runner.invoke(app, [stage, target, "--root", str(root)], env=env)
        if result.exit_code != 0:
            outcome.stage, outcome.exit_code = stage, result.exit_code
            outcome.message = result.stderr + result.stdout
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                outcome.message += f"\n{type(result.exception).__name__}: {result.exception}"
            return outcome
        outcome.passed.append(stage)
        if stage == until:
            break
    return outcome


def baseline_params() -> dict[str, Any]:
    params = tiny_params(images=True)
    params["models"] = {pair: params["models"][pair] for pair in PAIRS.values()}
    params["pretraining"] = {}  # its study names images-cnn and images-autoencoder
    params["tasks"]["tabular"]["ingest"] = {"source": "table", "path": "data/input/income.csv"}
    params["tasks"]["images"]["ingest"] = {"source": "npz", "path": "data/input/digits.npz", "size": 8}
    params["tasks"]["text"]["ingest"] = {"source": "text-table", "path": "data/input/reviews.jsonl"}
    for entry in params["models"].values():  # the baseline only needs a champion per task
        gates = entry["gates"] = dict(entry["gates"])
        gates.update(min_primary=0.0, max_overfit_gap=None)
        for gate in ("max_demographic_parity_difference", "max_equalized_odds_difference"):
            gates[gate] = 1.0 if gates.get(gate) is not None else None
    for task, cfg in params["tasks"].items():  # suites drafted from the baseline's own files
        cfg["validate"].update(suite=f"expectations/corpus/{task}.json", draft_if_missing=True)
    return params


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DVC project whose first `dlops run` trained a champion per task from files in data/input. The
    stage-by-stage cases run the stages in-process on a copy; the `dlops run` cases run that on one."""
    root = tmp_path_factory.mktemp("corpus") / "project"
    root.mkdir()
    write_inputs(root / "data" / "input")
    make_project(root, baseline_params())
    done = subprocess.run([bin_path("dlops"), "run"], cwd=root, env=project_env(root), capture_output=True,
                          text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def snapshot(root: Path, raw: bool = True) -> dict[str, Any]:
    """What a failed run must leave as it was: the registry (versions, aliases), every champion's model
    file, the accepted data, the user's inputs, the processed splits and (with `raw`) the ingested
    tables, which a stage after ingest may legitimately have replaced with the table it then refused."""
    from mlflow import MlflowClient

    store = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    registry = {
        model.name: {
            "versions": sorted(int(v.version) for v in client.search_model_versions(f"name='{model.name}'")),
            "aliases": dict(sorted(model.aliases.items())),
        }
        for model in client.search_registered_models()
    }
    watched = [root / "data" / name for name in ("input", "batches", "processed", *(["raw"] if raw else []))]
    watched.append(root / "models")
    files = {
        str(path.relative_to(root)): hashlib.md5(path.read_bytes()).hexdigest()
        for folder in watched
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    return {"registry": registry, "files": files}


def broken_copy(case: Case, baseline: Path, root: Path) -> Path:
    """A copy of `baseline` at `root` with the case's break applied (files, params and their text)."""
    shutil.copytree(baseline, root, symlinks=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    case.apply(root, params)
    (root / "params.yaml").write_text(case.params_text(yaml.safe_dump(params, sort_keys=False)))
    return root


ALL_CASES = CASES + OUTCOME_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.name for case in ALL_CASES])
def test_bad_input_stops_with_a_clear_message_and_changes_nothing(
    case: Case, baseline: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = broken_copy(case, baseline, tmp_path / "project")
    before = snapshot(root, raw=case.stage == "ingest")

    try:
        outcome = run_stages(root, case.task, env=case.env, until=case.stage if case.exit_code == 0 else None)
    finally:
        make_writable_again(root)
    message = outcome.message + caplog.text  # a warning goes to the log
    print(f"{case.name}: exit {outcome.exit_code} at {outcome.stage}: {message}")

    if case.exit_code == 0:  # accepted, with a warning
        assert outcome.stage is None and outcome.passed[-1] == case.stage, f"{case.name}: {outcome}"
    else:
        assert outcome.stage is not None, f"{case.name}: every stage passed ({outcome.passed})"
        assert outcome.stage == case.stage, f"{case.name}: failed at {outcome.stage}: {outcome.message}"
        assert outcome.exit_code == case.exit_code, outcome.message
    for needle in case.names:
        assert needle in message, f"{case.name}: {needle!r} not in {message!r}"
    after = snapshot(root, raw=case.stage == "ingest")
    if case.exit_code == EXIT_REJECTED:  # the rejected version is recorded; the champion stays
        assert aliases(after) == aliases(before), f"{case.name}: an alias moved"
        return
    assert after["registry"] == before["registry"], f"{case.name}: the registry changed"
    if case.exit_code == 0:
        return  # the stages that passed wrote their outputs
    changed = sorted(
        k
        for k in before["files"].keys() | after["files"].keys()
        if before["files"].get(k) != after["files"].get(k)
    )
    assert not changed, f"{case.name}: changed {changed}"


def aliases(snapshot_: dict[str, Any]) -> dict[str, Any]:
    return {name: model["aliases"] for name, model in snapshot_["registry"].items()}


# ------------------------------------------------------------------------------ the same, via `dlops run`
# Every case also runs through `dlops run` (DVC deletes a stage's outputs before running it; the run must
# put them back): about 5 s a case, most of it process start-up, two at a time. The cases accepted with a
# warning are not among them: through DVC they retrain and register (a minute each), as any good input;
# nor the locked store, whose every write waits MLflow's 20 s busy timeout (exit 75 through `dlops run`
# is env-tracking-unreachable's).
RUN_CASES = [case for case in ALL_CASES if case.exit_code != 0 and case.name != "env-tracking-store-locked"]

# Through DVC these two are no failure: a stage output folder replaced by a file is restored from DVC's
# run cache before any stage runs, and a read-only folder whose content is unchanged needs no stage.
RUN_EXIT = {"env-output-is-a-file": 0, "env-output-read-only": 0}


@dataclass
class RunOutcome:
    root: Path
    exit_code: int
    message: str
    before: dict[str, Any]  # snapshot() of the broken copy before `dlops run`, and after it
    after: dict[str, Any]


THROUGH_RUN_TEST = "test_bad_input_through_dlops_run_leaves_every_output_as_dvc_lock_records"


@pytest.fixture(scope="module")
def through_run(
    baseline: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, RunOutcome]:
    """`dlops run` on a broken copy for each selected case, two at a time: a run is mostly one busy
    process at a time, so two fill the two cores (the copies are independent workspaces)."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = {
        item.callspec.params["case"].name
        for item in request.session.items
        if getattr(item, "originalname", "") == THROUGH_RUN_TEST
    }
    folder = tmp_path_factory.mktemp("through-run")
    copies = {
        case.name: broken_copy(case, baseline, folder / case.name)
        for case in RUN_CASES
        if case.name in wanted
    }
    cases = {case.name: case for case in RUN_CASES}

    def run(name: str) -> RunOutcome:
        root, case = copies[name], cases[name]
        before = snapshot(root, raw=False)
        try:
            env = {**project_env(root), **(case.env or {})}
            done = subprocess.run(
                [bin_path("dlops"), "run"], cwd=root, env=env, capture_output=True, text=True, timeout=900
            )
        finally:
            make_writable_again(root)
        return RunOutcome(root, done.returncode, done.stderr + done.stdout, before, snapshot(root, raw=False))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(copies, pool.map(run, copies), strict=True))


@pytest.mark.parametrize("case", RUN_CASES, ids=[case.name for case in RUN_CASES])
def test_bad_input_through_dlops_run_leaves_every_output_as_dvc_lock_records(
    case: Case, through_run: dict[str, RunOutcome]
) -> None:
    from dlops.restore import locked_outputs

    outcome = through_run[case.name]
    root, message, before, after = outcome.root, outcome.message, outcome.before, outcome.after
    print(f"{case.name}: exit {outcome.exit_code}: {message[-2000:]}")

    expected = RUN_EXIT.get(case.name, case.exit_code)
    assert outcome.exit_code == expected, message[-3000:]
    if expected not in (0, EXIT_REJECTED):  # a failure ends the run, not a table that would bury it
        assert "dlops leaderboard (test split)" not in message, f"{case.name}: the table after a failure"
    for needle in case.names if case.name not in RUN_EXIT else ():
        assert needle in message, f"{case.name}: {needle!r} not in {message[-3000:]!r}"
    if case.exit_code == EXIT_REJECTED:
        assert aliases(after) == aliases(before), f"{case.name}: an alias moved"
    else:
        assert after["registry"] == before["registry"], f"{case.name}: the registry changed"
    changed = sorted(
        k for k in before["files"].keys() | after["files"].keys()
        if before["files"].get(k) != after["files"].get(k) and k.startswith(("models/", "data/input/"))
    )  # fmt: skip
    assert not changed or case.exit_code == EXIT_REJECTED, f"{case.name}: changed {changed}"
    missing = [out.path for out in locked_outputs(root) if not (root / out.path).exists()]
    stale = [
        out.path for out in locked_outputs(root)
        if not out.md5.endswith(".dir") and out.path not in missing
        and hashlib.md5((root / out.path).read_bytes()).hexdigest() != out.md5
    ]  # fmt: skip
    assert not missing and not stale, f"{case.name}: missing {missing}, differing from dvc.lock {stale}"


# ----------------------------------------------------------------------------- the same, at serving time
@pytest.fixture(scope="module")
def champion(baseline: Path) -> Iterator[Callable[[str], Any]]:
    """The baseline's registered champion of a model name, as `mlflow models serve` loads it (once)."""
    import mlflow

    loaded: dict[str, Any] = {}
    with mlflow_uris_restored():
        mlflow.set_tracking_uri(f"sqlite:///{baseline}/mlflow.db")
        mlflow.set_registry_uri(f"sqlite:///{baseline}/mlflow.db")

        def load(name: str) -> Any:
            if name not in loaded:
                loaded[name] = mlflow.pyfunc.load_model(f"models:/{name}@champion")
            return loaded[name]

        yield load


@pytest.mark.parametrize("request_", REQUESTS, ids=[request_.name for request_ in REQUESTS])
def test_bad_request_to_a_champion_is_refused_naming_its_place(
    request_: Request, baseline: Path, champion: Callable[[str], Any]
) -> None:
    """What `mlflow models serve` would answer: an error naming the column, row or shape, not a guess."""
    model = champion(request_.model)
    with pytest.raises(Exception) as refused:
        answer = model.predict(request_.make(baseline))
        print(f"{request_.name}: answered {answer}")
    message = str(refused.value)
    print(f"{request_.name}: {type(refused.value).__name__}: {message}")
    for needle in request_.names:
        assert needle in message, f"{request_.name}: {needle!r} not in {message!r}"


# ------------------------------------------------------------------------- the same, over HTTP (REST)
def _valid(model: str, root: Path) -> Any:
    """A request each kind's champion must answer: rows of the table, uint8 digits, two reviews."""
    if model == TABLE:
        return _rows(root)
    if model == IMAGES:
        return (np.random.default_rng(0).random((3, 1, 8, 8)) * 255).astype(np.uint8)
    return pd.DataFrame({"text": ["a fine film", "dull and long"], "group": ["casual", "formal"]})


def _body(payload: Any) -> str:
    return frame_body(payload) if isinstance(payload, pd.DataFrame) else tensor_body(payload)


@pytest.fixture(scope="module")
def rest(baseline: Path) -> Iterator[dict[str, str]]:
    """`mlflow models serve` of each kind's champion on loopback: {registered model name: base URL}."""
    from contextlib import ExitStack

    env = project_env(baseline)
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(served(f"models:/{name}@champion", baseline, bin_path("mlflow"), env))
            for name in (TABLE, IMAGES, TEXT)
        }


@pytest.mark.parametrize("model", [TABLE, IMAGES, TEXT])
def test_the_rest_server_answers_what_the_pyfunc_answers(
    model: str, baseline: Path, rest: dict[str, str], champion: Callable[[str], Any]
) -> None:
    payload = _valid(model, baseline)
    status, answer = invoke(rest[model], _body(payload))
    assert status == 200, answer
    over_http, direct = answer_frame(answer), champion(model).predict(payload)
    assert list(over_http["prediction"].astype(str)) == list(direct["prediction"].astype(str))
    probabilities = [c for c in direct.columns if c != "prediction"]
    got, want = over_http[probabilities].to_numpy(float), direct[probabilities].to_numpy(float)
    np.testing.assert_allclose(got, want, atol=1e-6)


def _wide_images(root: Path) -> str:
    return tensor_body(np.zeros((3, 1, 16, 16), dtype=np.uint8))


def _table_without_occupation(root: Path) -> str:
    return frame_body(_rows(root).drop(columns=["occupation"]))


REST_REQUESTS: dict[str, tuple[str, Callable[[Path], str], tuple[str, ...]]] = {
    "table-missing-column": (TABLE, _table_without_occupation, ("occupation",)),
    "table-word-for-number": (TABLE, lambda r: frame_body(_with(r, "age", 0, "forty")), ("age",)),
    "table-empty-payload": (TABLE, lambda r: "{}", ("dataframe_split",)),
    "images-wrong-shape": (IMAGES, _wide_images, ("(3, 1, 16, 16)", "(-1, 1, 8, 8)")),
    "images-empty-payload": (IMAGES, lambda r: "", ()),
    "text-missing-column": (TEXT, lambda r: frame_body(pd.DataFrame({"review": ["fine"]})), ("text",)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REST_REQUESTS))
def test_a_malformed_rest_request_gets_a_4xx_naming_its_place_and_the_server_keeps_serving(
    case: str, baseline: Path, rest: dict[str, str]
) -> None:
    model, make, names = REST_REQUESTS[case]
    status, answer = invoke(rest[model], make(baseline))
    print(f"{case}: {status} {str(answer)[:600]}")
    assert 400 <= status < 500, answer
    message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
    for needle in names:
        assert needle in message, f"{case}: {needle!r} not in {message[:2000]!r}"
    assert invoke(rest[model], _body(_valid(model, baseline)))[0] == 200  # still serving


def test_dlops_predict_scores_a_file_in_batches_as_the_pyfunc_does_and_refuses_bad_rows_whole(
    baseline: Path, champion: Callable[[str], Any], tmp_path: Path
) -> None:
    def predict(pair: str, src: Path, dst: Path) -> subprocess.CompletedProcess[str]:
        command = [
            bin_path("dlops"),
            "predict",
            pair,
            "--input",
            str(src),
            "--output",
            str(dst),
            "--batch-size",
            "3",
        ]
        return subprocess.run(
            command, cwd=baseline, env=project_env(baseline), capture_output=True, text=True
        )

    rows = _rows(baseline, n=10)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    done = predict("tabular-mlp", tmp_path / "rows.csv", tmp_path / "scored.parquet")
    assert done.returncode == 0, done.stderr
    assert "10 rows" in done.stdout
    scored, direct = pd.read_parquet(tmp_path / "scored.parquet"), champion(TABLE).predict(rows)
    pd.testing.assert_frame_equal(scored, direct.reset_index(drop=True), check_dtype=False)

    images = _valid(IMAGES, baseline)
    np.savez(tmp_path / "digits.npz", x=images)
    assert predict("images-mlp", tmp_path / "digits.npz", tmp_path / "digits.csv").returncode == 0
    got = pd.read_csv(tmp_path / "digits.csv")["prediction"].astype(str)
    assert list(got) == list(champion(IMAGES).predict(images)["prediction"].astype(str))

    rows.drop(columns=["occupation"]).to_csv(tmp_path / "short.csv", index=False)
    refused = predict("tabular-mlp", tmp_path / "short.csv", tmp_path / "short-scored.csv")
    assert refused.returncode == 65 and "occupation" in refused.stderr and "rows 0-2" in refused.stderr
    assert not (tmp_path / "short-scored.csv").exists()
