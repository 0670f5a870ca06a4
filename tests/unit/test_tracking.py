"""MLflow tracking on a temporary sqlite store: batched run logging, finding runs by model sha,
idempotent registration, gates recorded as version tags, and the @champion / @previous aliases.

One store per module (a new sqlite db costs seconds of migrations); each test uses its own pair, so
registered models never collide.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from dlops import decisions, leaderboard, tracking
from dlops.errors import BadInput
from dlops.files import file_sha256
from dlops.kinds.tabular.transform import TabularTransform
from dlops.models.registry import build_model
from dlops.params import ColumnRoles, GatesConfig, MlflowConfig, PreprocessConfig
from dlops.serving import DlopsTabularModel
from dlops.training.checkpoint import model_checkpoint, save_atomic

CFG = MlflowConfig(experiment="dlops-test", model_prefix="t")
DPD = "max_demographic_parity_difference"
GATES = GatesConfig(
    primary_metric="balanced_accuracy",
    min_primary=0.7,
    max_demographic_parity_difference=0.1,
    max_equalized_odds_difference=0.15,
    max_overfit_gap=0.05,
    promotion_tolerance=0.005,
)
CLASSES = ["<=50K", ">50K"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:  # conftest's per-file guard restores the URIs
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        mp.delenv("DLOPS_PIPELINE_RUN_ID", raising=False)
        tracking.configure(root, CFG)
        yield root


def raw_rows(n: int = 64, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    color = rng.choice(["red", "blue", "green"], n)
    income = np.where(age + rng.normal(0, 5, n) > 45, ">50K", "<=50K")
    return pd.DataFrame({"age": age, "hours": rng.normal(40, 8, n), "color": color, "income": income})


@pytest.fixture(scope="module")
def transform_json(store: Path) -> Path:
    path = store / "transform.json"
    _write_transform(raw_rows(), path)
    return path


def make_checkpoint(root: Path, pair: str, seed: int, input_dim: int) -> Path:
    torch.manual_seed(seed)
    model = build_model("mlp", input_shape=(input_dim,), num_classes=2, config={"hidden_sizes": [4]})
    path = root / "models" / pair / f"model-{seed}.pt"
    ckpt = model_checkpoint(
        model=model,
        pair=pair,
        task="income",
        family="mlp",
        model_config={"hidden_sizes": [4]},
        input_shape=(input_dim,),
        classes=CLASSES,
        train_config={},
        best_epoch=seed,
    )
    save_atomic(ckpt, path)
    return path


def trained_run(pair: str, sha: str) -> str:
    with tracking.training_run(pair, "income", "mlp", {"train": {"lr": 0.01}}, {"git.commit": "abc"}) as run:
        run.log_epoch({"train/loss": 0.5}, 1)
        run.set_tags({"dlops.model_sha256": sha})
    return run.run_id


def metrics(primary: float, dpd: float = 0.02) -> dict[str, Any]:
    return {
        "test/balanced_accuracy": primary,
        "test/accuracy": primary + 0.01,
        "fairness/max/demographic_parity_difference": dpd,
        "fairness/max/equalized_odds_difference": 0.03,
        "fairness/sex/demographic_parity_difference": dpd,
        "overfit/primary_gap": 0.01,
        "overfit/diverged": False,
        "overfit/diagnosis": "ok",
    }


def register(
    store: Path,
    transform: Path,
    pair: str,
    seed: int,
    primary: float,
    *,
    dpd: float = 0.02,
    split: str = "split-1",
    score_champion: Any = None,
    paired: Any = None,
    gates: GatesConfig = GATES,
    control: str | None = None,
) -> dict[str, Any]:
    ckpt = make_checkpoint(store, pair, seed, _input_dim(transform))
    sha = file_sha256(ckpt)
    run_id = tracking.find_run(pair, sha) or trained_run(pair, sha)
    example = raw_rows(20, seed=5).drop(columns=["income"])
    return tracking.register(
        pair=pair,
        run_id=run_id,
        model_sha256=sha,
        metrics=metrics(primary, dpd),
        gates=gates,
        cfg=CFG,
        artifacts={"checkpoint": ckpt, "transform": transform},
        raw_example=example,
        python_model=DlopsTabularModel,
        tabular_signature=True,
        extra_tags={"data.test_split": split},
        score_champion=score_champion,
        paired=paired,
        control=control,
        card=lambda report, tags: {
            "title": f"{report['model_name']} v{report['version']}",
            "decision": {"verdict": report["verdict"], "reasons": report["reasons"]},
            "lineage": {"git.commit": tags["git.commit"]},  # from the training run's tags
            "gates": report["checks"],
        },
    )


def client() -> Any:
    return tracking.client()


# --------------------------------------------------------------------------------------------- tests
def test_configure_is_idempotent_and_keeps_artifacts_under_root(store: Path) -> None:
    first = tracking.configure(store, CFG)
    assert tracking.configure(store, CFG) == first
    experiment = client().get_experiment(first)
    assert experiment.artifact_location == (store / "mlartifacts").as_uri()


def test_training_run_logs_params_once_and_epochs_in_batches(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    calls: list[tuple[int, int, int]] = []
    original = MlflowClient.log_batch

    def counting(
        self: Any, run_id: str, metrics: Any = (), params: Any = (), tags: Any = (), **kw: Any
    ) -> Any:
        calls.append((len(metrics), len(params), len(tags)))
        return original(self, run_id, metrics=metrics, params=params, tags=tags, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", counting)
    params = {
        "task": "income",
        "model": {"hidden_sizes": [8, 4]},
        "train": {"lr": 0.003, "epochs": 25},
        "note": "x" * 600,
    }
    with tracking.training_run("runs-a", "income", "mlp", params, {"host.device": "cpu"}) as run:
        for epoch in range(1, 26):
            run.log_epoch({"train/loss": 1.0 / epoch, "val/accuracy": 0.5 + epoch / 100}, step=epoch)
        run.set_tags({"dlops.model_sha256": "a" * 64})

    assert calls == [(0, 5, 0), (20, 0, 0), (20, 0, 0), (0, 0, 1), (10, 0, 0)]
    got = client().get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "runs-a"
    assert got.data.params["model.hidden_sizes"] == "[8, 4]" and got.data.params["train.lr"] == "0.003"
    assert len(got.data.params["note"]) == 500
    assert {
        "dlops.pair": "runs-a",
        "dlops.task": "income",
        "dlops.family": "mlp",
        "host.device": "cpu",
        "mlflow.source.type": "LOCAL",  # MLflow's own source column; the store's root is no git tree
    }.items() <= got.data.tags.items()
    assert got.data.tags["mlflow.source.name"] and "mlflow.source.git.commit" not in got.data.tags
    history = client().get_metric_history(run.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(e, pytest.approx(1.0 / e)) for e in range(1, 26)]
    assert tracking.find_run("runs-a", "a" * 64) == run.run_id
    assert tracking.find_run("runs-a", "b" * 64) is None


def test_source_tags_name_the_checkouts_commit_for_mlflows_ui() -> None:
    from tests.conftest import REPO

    from dlops.tracking.lineage import source_tags

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    tags = source_tags(REPO)
    assert tags["mlflow.source.git.commit"] == head.strip()
    assert tags["mlflow.source.type"] == "LOCAL"


def test_failed_block_marks_run_failed_and_find_run_skips_it(store: Path) -> None:
    with pytest.raises(ValueError), tracking.training_run("runs-b", "income", "mlp", {}, {}) as run:
        run.log_epoch({"train/loss": 1.0}, 1)
        run.set_tags({"dlops.model_sha256": "c" * 64})
        raise ValueError("boom")
    got = client().get_run(run.run_id)
    assert got.info.status == "FAILED"
    assert [m.value for m in client().get_metric_history(run.run_id, "train/loss")] == [1.0]
    assert tracking.find_run("runs-b", "c" * 64) is None


def test_a_run_left_running_by_a_killed_process_ends_killed_at_the_next_run(store: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = dead.stdout.strip()  # a process that has exited: its run can never end itself
    with tracking.training_run("runs-k", "income", "mlp", {}, {}) as killed:
        client().set_tag(killed.run_id, "dlops.pid", pid)
    client().update_run(killed.run_id, status="RUNNING")  # what SIGKILL mid-training leaves
    alive = client().create_run(
        tracking.store.experiment_id(),
        tags={"dlops.pair": "runs-k", "dlops.host": socket.gethostname(), "dlops.pid": str(os.getppid())},
    )  # a run of a living process (another train) is left alone
    with tracking.training_run("runs-k", "income", "mlp", {}, {}) as rerun:
        pass
    assert client().get_run(killed.run_id).info.status == "KILLED"
    assert client().get_run(alive.info.run_id).info.status == "RUNNING"
    assert client().get_run(rerun.run_id).info.status == "FINISHED"


def test_log_evaluation_logs_numbers_tags_and_files(store: Path, tmp_path: Path) -> None:
    run_id = trained_run("eval-a", "d" * 64)
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.png").write_bytes(b"png")
    tracking.log_evaluation(
        run_id,
        {
            "test/accuracy": 0.8,
            "overfit/diverged": True,
            "test/n": 12,
            "overfit/diagnosis": "overfitting",
            "test/classes": ["a", "b"],
            "test/roc_auc": None,
        },
        tmp_path,
    )
    data = client().get_run(run_id).data
    assert data.metrics["test/accuracy"] == 0.8 and data.metrics["overfit/diverged"] == 1.0
    assert data.metrics["test/n"] == 12.0 and "test/roc_auc" not in data.metrics
    assert (
        data.tags["eval.overfit/diagnosis"] == "overfitting"
        and data.tags["eval.test/classes"] == '["a", "b"]'
    )
    listed = {f.path for f in client().list_artifacts(run_id, "evaluation")}
    assert listed == {"evaluation/metrics.json", "evaluation/plots"}


def test_training_and_evaluation_data_are_mlflow_datasets_with_dvcs_md5(store: Path, tmp_path: Path) -> None:
    raw_md5, processed_md5 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210.dir"
    lineage = {"data.version": raw_md5, "data.processed": processed_md5}
    with tracking.training_run("runs-data", "income", "mlp", {}, lineage) as run:
        run.log_epoch({"train/loss": 1.0}, 1)
    tracking.log_evaluation(run.run_id, {"test/accuracy": 0.8}, tmp_path / "nothing")
    inputs = client().get_run(run.run_id).inputs.dataset_inputs
    found = {(i.dataset.name, i.dataset.digest, i.tags[0].value) for i in inputs}
    assert found == {
        ("data/raw/income.parquet", raw_md5, "training"),
        ("data/processed/income", processed_md5, "training"),
        ("data/processed/income#test", processed_md5, "evaluation"),
    }


def test_lineage_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  ingest@income:\n    cmd: dlops ingest income\n    outs:\n"
        "    - path: data/raw/income.parquet\n      hash: md5\n      md5: 0123abcd\n      size: 10\n"
    )
    monkeypatch.setenv("DLOPS_PIPELINE_RUN_ID", "pipe-7")
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "flow-9")
    tags = tracking.lineage_tags(tmp_path, "income", "feedbeef")
    assert tags["data.version"] == "0123abcd" and tags["params.hash"] == "feedbeef"
    assert tags["git.commit"] == "unknown" and tags["git.dirty"] == "unknown"  # tmp_path is no git repo
    assert tags["pipeline.run_id"] == "pipe-7" and tags["prefect.flow_run_id"] == "flow-9"
    assert tags["torch"].startswith(torch.__version__.split("+")[0])
    assert tracking.lineage_tags(tmp_path, "other", "x")["data.version"] == "untracked"

    repo = Path(__file__).resolve().parents[2]
    in_git = tracking.lineage_tags(repo, "income", "x")
    assert len(in_git["git.commit"]) == 40 and in_git["git.dirty"] in ("true", "false")


def test_a_run_rewriting_its_own_outputs_is_not_dirty_but_edited_code_is(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    lock = "stages:\n  evaluate@m:\n    outs:\n    - path: reports/m.json\n      md5: ab\n"
    for name, text in {
        "dvc.lock": lock,
        "reports/m.json": "{}",
        "src.py": "x = 1\n",
        "dag.yaml": "a\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone")
    (tmp_path / "dvc.lock").write_text(lock + "# rewritten by the run\n")
    (tmp_path / "reports/m.json").write_text('{"acc": 1}')
    (tmp_path / "dag.yaml").write_text("b\n")
    assert tracking.lineage_tags(tmp_path, "t", "x")["git.dirty"] == "false"  # a fresh clone's first run
    (tmp_path / "src.py").write_text("x = 2\n")
    assert tracking.lineage_tags(tmp_path, "t", "x")["git.dirty"] == "true"


def test_register_is_idempotent_and_first_passing_model_becomes_champion(
    store: Path, transform_json: Path
) -> None:
    first = register(store, transform_json, "reg-a", seed=1, primary=0.80)
    again = register(store, transform_json, "reg-a", seed=1, primary=0.80)
    assert first["promoted"] and first["version"] == again["version"] == "1"
    assert first["current_champion"] == "1" and first["champion_version"] is None
    assert len(client().search_model_versions("name = 't-reg-a'")) == 1
    assert again["reasons"][-1] == "this model is already champion v1"

    info = tracking.champion_info("reg-a", CFG)
    assert info is not None and info["version"] == "1"
    tags = info["tags"]
    assert tags["decision"] == "promoted" and tags["gate.min_primary.passed"] == "true"
    assert float(tags["gate.min_primary.value"]) == 0.80 and float(tags["gate.min_primary.limit"]) == 0.7
    assert (
        tags["metric.test/balanced_accuracy"] == "0.8"
        and "metric.fairness/sex/demographic_parity_difference" not in tags
    )
    assert tags["git.commit"] == "abc" and tags["data.test_split"] == "split-1"
    assert "test/balanced_accuracy = 0.800 meets the minimum 0.700" in tags["decision.reasons"]
    version = client().get_model_version("t-reg-a", "1")
    assert version.run_id == info["run_id"] and "**Decision: promoted**" in version.description
    assert "# t-reg-a v1" in version.description and "Gates" in version.description
    assert "abc" in version.description  # the training run's git.commit reached the card
    artifacts = {f.path for f in client().list_artifacts(version.run_id, "model_card")}
    assert artifacts == {"model_card/model_card.html"}
    verdicts = [f.path for f in client().list_artifacts(version.run_id, "verdicts")]
    assert len(verdicts) == 2 and verdicts[0].endswith("-promoted.json")  # registered, then re-registered
    logged = client().get_logged_model(version.source.rsplit("/", 1)[-1])  # source is models:/<model_id>
    assert logged.artifact_location.startswith((store / "mlartifacts").as_uri())
    assert json_roundtrip(first) == first


def test_champion_moves_to_previous_and_failing_or_worse_candidates_are_rejected(
    store: Path, transform_json: Path
) -> None:
    register(store, transform_json, "reg-b", seed=1, primary=0.80)
    better = register(store, transform_json, "reg-b", seed=2, primary=0.85)
    assert better["promoted"] and better["champion_version"] == "1" and better["current_champion"] == "2"
    assert str(client().get_model_version_by_alias("t-reg-b", "previous").version) == "1"

    unfair = register(store, transform_json, "reg-b", seed=3, primary=0.95, dpd=0.3)
    assert not unfair["promoted"] and unfair["version"] == "3" and unfair["current_champion"] == "2"
    tags = client().get_model_version("t-reg-b", "3").tags
    assert tags["decision"] == "rejected" and tags["gate.max_demographic_parity_difference.passed"] == "false"
    assert (
        "fairness/max/demographic_parity_difference = 0.300 exceeds the limit 0.100"
        in tags["decision.reasons"]
    )

    worse = register(store, transform_json, "reg-b", seed=4, primary=0.84)
    within = register(store, transform_json, "reg-b", seed=5, primary=0.846)
    assert not worse["promoted"] and within["promoted"]
    assert "is worse than champion v2 (0.850)" in worse["reasons"][-1]
    assert str(client().get_model_version_by_alias("t-reg-b", "champion").version) == within["version"] == "5"
    assert str(client().get_model_version_by_alias("t-reg-b", "previous").version) == "2"


def test_champion_that_now_fails_a_gate_keeps_the_alias_and_says_why(
    store: Path, transform_json: Path
) -> None:
    register(store, transform_json, "reg-d", seed=1, primary=0.80)
    again = register(store, transform_json, "reg-d", seed=1, primary=0.80, dpd=0.3)
    assert not again["promoted"] and again["version"] == again["current_champion"] == "1"
    assert "keeps @champion" in again["reasons"][-1]
    tags = client().get_model_version("t-reg-d", "1").tags
    assert tags["decision"] == "rejected" and tags["gate.max_demographic_parity_difference.value"] == "0.3"


def test_champion_on_another_test_split_is_rescored_or_reported_incomparable(
    store: Path, transform_json: Path
) -> None:
    register(store, transform_json, "reg-c", seed=1, primary=0.80, split="old")
    uris: list[str] = []

    def scorer(uri: str) -> float:
        uris.append(uri)
        return 0.90

    rescored = register(
        store, transform_json, "reg-c", seed=2, primary=0.85, split="new", score_champion=scorer
    )
    assert uris == ["models:/t-reg-c/1"] and not rescored["promoted"] and rescored["champion_primary"] == 0.90
    assert "re-scored on the current test split" in " ".join(rescored["reasons"])

    blind = register(store, transform_json, "reg-c", seed=3, primary=0.85, split="new")
    assert blind["promoted"] and blind["champion_primary"] is None
    assert "no scorer was given" in " ".join(blind["reasons"])


def test_a_reason_quoting_a_url_reaches_the_version_tags_without_its_password(
    store: Path, transform_json: Path
) -> None:
    register(store, transform_json, "reg-r", seed=1, primary=0.80, split="old")

    def unreachable(uri: str) -> float:
        raise ConnectionError("https://reader:s3cret@artifacts.example.org/m unreachable")

    report = register(
        store, transform_json, "reg-r", seed=2, primary=0.85, split="new", score_champion=unreachable
    )
    tags = client().get_model_version("t-reg-r", report["version"]).tags
    assert (
        "could not be re-scored" in tags["decision.reasons"]
        and "artifacts.example.org" in tags["decision.reasons"]
    )
    assert not [k for k, v in tags.items() if "s3cret" in v]


def test_champion_pyfunc_predicts_on_raw_rows(store: Path, transform_json: Path) -> None:
    register(store, transform_json, "serve-a", seed=1, primary=0.80)
    model = tracking.load_champion("serve-a", CFG)
    rows = raw_rows(30, seed=9).drop(columns=["income"])
    rows.loc[0, "age"] = np.nan  # a missing value in an integer column must not break the signature
    out = model.predict(rows)
    assert list(out.columns) == ["prediction", *[f"proba_{c}" for c in CLASSES]]
    assert len(out) == 30 and set(out["prediction"]) <= set(CLASSES)
    np.testing.assert_allclose(out[[f"proba_{c}" for c in CLASSES]].sum(axis=1), 1.0, rtol=1e-6)

    # never a confident class beside a NaN probability: ±inf and absurd magnitudes are refused, named
    for value, said in ((1e308, "1e+308 is out of range"), (float("-inf"), "-inf is not a finite number")):
        bad = rows.copy()
        bad.loc[[3, 7], "age"] = value
        with pytest.raises(Exception, match=re.escape(f"input column 'age', row(s) 3, 7: {said}")):
            model.predict(bad)


def test_a_create_whose_answer_was_lost_makes_one_version(
    store: Path, transform_json: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    real, calls = mlflow.register_model, []

    def answer_lost(*args: Any, **kwargs: Any) -> Any:
        calls.append(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES"))
        created = real(*args, **kwargs)  # the server created it ...
        if len(calls) == 1:
            raise ConnectionError("connection reset by peer")  # ... and the answer never came back
        return created

    monkeypatch.setattr(mlflow, "register_model", answer_lost)
    report = register(store, transform_json, "lost-answer", seed=4, primary=0.80)
    versions = client().search_model_versions("name = 't-lost-answer'")
    assert [str(v.version) for v in versions] == [report["version"]] == ["1"]  # found by sha, not re-made
    assert calls == ["0"]  # the create itself is never retried by MLflow's HTTP layer


def test_load_champion_without_one_says_so(store: Path) -> None:
    with pytest.raises(LookupError, match="no @champion"):
        tracking.load_champion("nobody", CFG)
    assert tracking.champion_info("nobody", CFG) is None


@pytest.mark.slow
def test_registered_model_loads_where_dlops_is_not_installed(
    store: Path, transform_json: Path, tmp_path: Path
):
    import mlflow

    report = register(store, transform_json, "serve-b", seed=1, primary=0.80)
    local = mlflow.artifacts.download_artifacts(
        f"models:/t-serve-b/{report['version']}", dst_path=str(tmp_path)
    )
    # models from code: the MLmodel names a code file; no pickle is there to be unpickled on load
    assert not list(Path(local).rglob("*.pkl")), sorted(Path(local).rglob("*.pkl"))
    assert "model_code_path" in (Path(local) / "MLmodel").read_text()
    code = (
        "import sys, importlib.util\n"
        "sys.path[:] = [p for p in sys.path if not p.startswith(sys.argv[2])]\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        "assert importlib.util.find_spec('dlops') is None\n"
        "import mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "rows = pd.DataFrame({'age': [30, None], 'hours': [40.0, 50.0], 'color': ['red', None]})\n"
        "out = model.predict(rows)\n"
        "import dlops; assert dlops.__file__.startswith(sys.argv[1]), dlops.__file__\n"
        "import json; print(json.dumps(list(out['prediction'])))\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run(
        [sys.executable, "-c", code, local, src], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout.strip().splitlines()[-1])) == 2


@pytest.mark.slow
def test_two_processes_racing_on_a_fresh_store(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from dlops import tracking\n"
        "from dlops.params import MlflowConfig\n"
        "print(tracking.configure(Path(sys.argv[1]), MlflowConfig(experiment='race')))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1


# ------------------------------------------------------------------------------------------ helpers
def json_roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data))


def _input_dim(transform: Path) -> int:
    return len(TabularTransform.from_json(transform).feature_names)


def _write_transform(raw: pd.DataFrame, path: Path) -> None:
    roles = ColumnRoles(
        target="income", positive_label=">50K", numeric=["age", "hours"], categorical=["color"]
    )
    TabularTransform.fit(raw, roles, PreprocessConfig()).to_json(path)


def paired_rows(candidate_right: float, champion_right: float, n: int = 2000) -> tracking.PairedRows:
    """Test rows where the candidate and any champion are right on the given shares of rows."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    mine = np.where(rng.random(n) < candidate_right, y, 1 - y)
    theirs = np.where(rng.random(n) < champion_right, y, 1 - y)
    return tracking.PairedRows(y_true=y, candidate=mine, predict=lambda uri: theirs)


def test_paired_test_promotes_when_better_keeps_when_indistinguishable_rejects_when_worse(
    store: Path, transform_json: Path
) -> None:
    register(store, transform_json, "reg-p", seed=1, primary=0.80)
    better = register(store, transform_json, "reg-p", seed=2, primary=0.9, paired=paired_rows(0.9, 0.8))
    assert better["verdict"] == "promoted" and better["comparison"]["verdict"] == "better"
    assert "better than champion v1 with 95% confidence" in better["reasons"][-1]
    same = register(store, transform_json, "reg-p", seed=3, primary=0.9, paired=paired_rows(0.85, 0.85))
    assert same["verdict"] == "kept" and not same["promoted"] and same["current_champion"] == "2"
    assert "not distinguishable from champion v2" in same["reasons"][-1]
    worse = register(store, transform_json, "reg-p", seed=4, primary=0.9, paired=paired_rows(0.7, 0.85))
    assert worse["verdict"] == "rejected" and worse["comparison"]["ci_high"] < 0
    tags = client().get_model_version("t-reg-p", worse["version"]).tags
    assert tags["decision"] == "rejected" and tags["comparison.verdict"] == "worse"

    mcnemar = GATES.model_copy(update={"promotion_test": "mcnemar", "when_indistinguishable": "promote"})
    tie = register(
        store, transform_json, "reg-p", seed=5, primary=0.9, paired=paired_rows(0.85, 0.85), gates=mcnemar
    )
    assert tie["verdict"] == "promoted" and tie["comparison"]["method"] == "mcnemar"


def test_first_version_can_wait_for_a_person(store: Path, transform_json: Path) -> None:
    hold = GATES.model_copy(update={"first_version": "hold"})
    report = register(store, transform_json, "reg-h", seed=1, primary=0.80, gates=hold)
    assert report["verdict"] == "held" and not report["promoted"] and report["current_champion"] is None
    assert tracking.champion_info("reg-h", CFG) is None


def test_a_control_is_never_promoted_and_its_tags_say_whether_its_gate_caught_it(
    store: Path, transform_json: Path
) -> None:
    caught = register(store, transform_json, "reg-ctl", seed=1, primary=0.80, dpd=0.3, control=DPD)
    passed = register(store, transform_json, "reg-ctl", seed=2, primary=0.85, control=DPD)  # passes all
    assert not caught["promoted"] and not passed["promoted"] and passed["current_champion"] is None
    assert caught["verdict"] == passed["verdict"] == "rejected"
    assert caught["control_caught"] is True and passed["control_caught"] is False
    assert "built to fail max_demographic_parity_difference, and it did" in caught["reasons"][-1]
    assert "but it passed" in passed["reasons"][-1]
    assert tracking.champion_info("reg-ctl", CFG) is None
    tags = client().get_model_version("t-reg-ctl", "2").tags
    assert tags["control"] == DPD and tags["control.caught"] == "false" and tags["decision"] == "rejected"
    assert client().get_model_version("t-reg-ctl", "1").tags["control.caught"] == "true"
    state = leaderboard.registry_state(["reg-ctl"], CFG)["reg-ctl"]
    assert state["decision"] == f"rejected (control: {DPD})" and state["champion"] is None


def test_human_promote_refuses_a_failed_gate_without_override_and_rollback_restores(
    store: Path, transform_json: Path
) -> None:
    register(store, transform_json, "reg-x", seed=1, primary=0.80)
    register(store, transform_json, "reg-x", seed=2, primary=0.85)  # v2 champion, v1 previous
    unfair = register(store, transform_json, "reg-x", seed=3, primary=0.95, dpd=0.3)  # v3 rejected
    with pytest.raises(PermissionError, match=r"v3 failed gate\(s\) \['max_demographic_parity_difference'\]"):
        decisions.promote("reg-x", unfair["version"], CFG, user="ana", override=False, reason="")
    with pytest.raises(ValueError, match="--override needs --reason"):
        decisions.promote("reg-x", "3", CFG, user="ana", override=True, reason=" ")
    done = decisions.promote("reg-x", "3", CFG, user="ana", override=True, reason="legal signed off")
    assert done["changed"] and done["previous"] == "2"
    v3 = client().get_model_version("t-reg-x", "3")
    assert v3.tags["decision"] == "promoted" and v3.tags["decision.by"] == "ana"
    assert v3.tags["decision.override"] == "true" and v3.tags["decision.reason"] == "legal signed off"
    assert "overriding failed gates ['max_demographic_parity_difference']" in v3.description
    assert client().get_model_version("t-reg-x", "2").tags["decision.superseded_by"] == "v3"

    back = decisions.rollback("reg-x", CFG, user="bo", reason="complaints")
    assert back["rolled_back"] == "3" and back["version"] == "2"
    assert str(client().get_model_version_by_alias("t-reg-x", "champion").version) == "2"
    assert str(client().get_model_version_by_alias("t-reg-x", "previous").version) == "3"
    assert client().get_model_version("t-reg-x", "3").tags["decision"] == "rolled back"
    kinds = [f.path.rsplit("-", 1)[-1] for f in client().list_artifacts(v3.run_id, "verdicts")]
    assert "back.json" in kinds  # ...-rolled-back.json next to the pipeline's and the promotion's

    with pytest.raises(LookupError, match="no @previous"):
        register(store, transform_json, "reg-y", seed=1, primary=0.80)
        decisions.rollback("reg-y", CFG, user="bo", reason="")


def test_registry_state_and_leaderboard_run(store: Path, transform_json: Path) -> None:
    register(store, transform_json, "reg-l", seed=1, primary=0.80)
    state = leaderboard.registry_state(["reg-l", "absent"], CFG)
    assert state == {"reg-l": {"champion": "v1", "latest": "v1", "decision": "promoted"}}
    run_id = leaderboard.log_leaderboard([{"model": "reg-l", "primary": "accuracy", "value": 0.8}], "| x |\n")
    run = client().get_run(run_id)
    assert run.info.run_name == "leaderboard" and run.data.metrics["reg-l/accuracy"] == 0.8
    assert {f.path for f in client().list_artifacts(run_id)} == {"leaderboard.json", "leaderboard.md"}


def test_lineage_walks_version_run_commit_and_data(store: Path, transform_json: Path) -> None:
    from dlops import lineage

    report = register(store, transform_json, "reg-g", seed=1, primary=0.80)
    chain = lineage.lineage("models:/t-reg-g@champion")
    assert chain["version"] == report["version"] and chain["run_id"] == report["run_id"]
    assert chain["git_commit"] == "abc" and chain["test_split"] == "split-1"
    assert chain["aliases"] == ["champion"] and chain["decision"] == "promoted"
    assert chain["restore"][0] == "git checkout abc" and "dvc checkout data/raw/income" in chain["restore"][1]
    assert lineage.lineage(f"models:/t-reg-g/{report['version']}")["run_id"] == report["run_id"]
    text = lineage.render(chain)
    assert "t-reg-g v1 @champion" in text and "-> commit abc" in text
    with pytest.raises(ValueError, match="not a registered model URI"):
        lineage.lineage("t-reg-g:1")
    with pytest.raises(LookupError, match="no version 9"):
        lineage.lineage("models:/t-reg-g/9")
    with pytest.raises(LookupError, match="no version with alias @previous"):
        lineage.lineage("models:/t-reg-g@previous")


def test_a_database_uri_is_refused_with_the_password_hidden(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg2://mlflow:s3cret@db:5432/mlflow")
    with pytest.raises(BadInput, match="points at a database directly") as caught:
        tracking.configure(tmp_path, MlflowConfig())
    assert "s3cret" not in str(caught.value) and "mlflow:***@db" in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "said"),
    [("garbage", "is a plain path (MLflow's file store)"), ("gopher://x", "has scheme 'gopher'")],
)
def test_a_tracking_uri_mlflow_cannot_use_is_named(
    uri: str, said: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(BadInput, match="MLFLOW_TRACKING_URI=") as caught:
        tracking.configure(tmp_path, MlflowConfig())
    assert repr(uri) in str(caught.value) and said in str(caught.value)
