"""Security: checkpoints load with weights_only=True, registered models only after their sha256 checks
out, params cannot write outside the project or fetch unpinned URLs, and secrets never reach MLflow or
the logs."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tests.conftest import REPO, tiny_params
from tests.unit.test_tracking import CFG, _write_transform, raw_rows
from tests.unit.test_tracking import register as register_version
from typer.testing import CliRunner

from dlops import redact, tracking
from dlops.data.inputs import DataSourceError, download
from dlops.params import ConfigError, load_params
from dlops.training.checkpoint import FORMAT, CheckpointError, load_model, load_safe

SECRET = "hunter2-s3cr3t"


def _load(tmp_path: Path, raw: dict[str, Any]) -> Any:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


def _set(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


# --------------------------------------------------------------------------------- weights_only loads
_LOAD_CALL = re.compile(r"\btorch\.load\s*\(")


def _call_text(source: str, start: int) -> str:
    """The text of the call whose '(' ends at `start`, up to its matching ')'."""
    depth, i = 1, start
    while depth and i < len(source):
        depth += {"(": 1, ")": -1}.get(source[i], 0)
        i += 1
    return source[start:i]


def test_every_torch_load_in_the_source_tree_is_weights_only() -> None:
    """A new bare `torch.load(` (or a pickle load) in src/, pipelines/ or benchmarks/ fails here."""
    offenders = []
    files = [f for folder in ("src", "pipelines", "benchmarks") for f in (REPO / folder).rglob("*.py")]
    for file in files:
        source = file.read_text(encoding="utf-8")
        where = file.relative_to(REPO)
        for match in _LOAD_CALL.finditer(source):
            if not re.search(r"weights_only\s*=\s*True", _call_text(source, match.end())):
                offenders.append(f"{where}:{source.count(chr(10), 0, match.start()) + 1}")
        if re.search(r"\b(c?pickle|joblib|dill)\.loads?\s*\(|from torch import load\b", source):
            offenders.append(f"{where}: unpickles")
    assert files and not offenders, f"checkpoints must go through load_safe (weights_only=True): {offenders}"


class _Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "family": "mlp", "state_dict": {}, "payload": _Payload(marker)}, path)
    return path


def test_a_checkpoint_carrying_a_pickled_object_is_refused_by_every_entry_point(tmp_path: Path) -> None:
    from dlops.cli import app

    marker = tmp_path / "pwned"
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    evil = _evil_checkpoint(root / "models" / "tabular-mlp" / "model.pt", marker)

    for load in (load_safe, load_model):
        with pytest.raises(CheckpointError, match="cannot be loaded safely") as caught:
            load(evil)
        assert str(evil) in str(caught.value)
    result = CliRunner().invoke(app, ["evaluate", "tabular-mlp", "--root", str(root)])
    assert result.exit_code == 1
    assert "dlops evaluate: error:" in result.stderr and str(evil) in result.stderr
    assert "cannot be loaded safely" in result.stderr
    assert not marker.exists()  # the payload never ran


# ------------------------------------------------------------------------------- the project registry
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("mlflow-security")
    with pytest.MonkeyPatch.context() as mp:  # conftest's per-file guard restores the URIs
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        mp.delenv("DLOPS_PIPELINE_RUN_ID", raising=False)
        tracking.configure(root, CFG)
        _write_transform(raw_rows(), root / "transform.json")
        yield root


def test_a_tampered_registered_checkpoint_is_refused_naming_the_version(store: Path, tmp_path: Path) -> None:
    report = register_version(store, store / "transform.json", "sec-a", seed=1, primary=0.80)
    uri = f"models:/t-sec-a/{report['version']}"
    found = tracking.champion_checkpoint("sec-a", CFG, tmp_path / "ok")
    assert found is not None and found[0]["uri"] == uri
    assert load_safe(found[1])["pair"] == "sec-a"  # untampered: verified, then loaded
    assert tracking.load_champion("sec-a", CFG) is not None

    copies = list((store / "mlartifacts").rglob("model-1.pt"))
    assert copies, "the registered checkpoint is stored under mlartifacts/"
    other = load_safe(copies[0])
    other["best_epoch"] = 99  # a valid checkpoint with other contents: only the sha256 tells
    for copy in copies:
        torch.save(other, copy)

    with pytest.raises(tracking.ModelIntegrityError, match="dlops.model_sha256") as caught:
        tracking.champion_checkpoint("sec-a", CFG, tmp_path / "tampered")
    assert uri in str(caught.value) and f"v{report['version']}" in str(caught.value)
    with pytest.raises(tracking.ModelIntegrityError, match=re.escape(uri)):
        tracking.load_champion("sec-a", CFG)


def test_only_version_uris_of_the_project_registry_load(store: Path) -> None:
    for uri in ("models:/t-sec-a@champion", "runs:/abc/model", "s3://bucket/model", "/tmp/model"):
        with pytest.raises(ValueError, match="only models:/<name>/<version>"):
            tracking.load_registered(uri)
    # the registered name is always <mlflow.model_prefix>-<model>: another prefix finds nothing
    assert tracking.champion_info("sec-a", CFG.model_copy(update={"model_prefix": "other"})) is None


# ------------------------------------------------------------------------------------- paths in params
@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", ".hidden", "x..y", "tab ular", "ta$k"])
def test_task_and_model_names_must_be_plain(tmp_path: Path, name: str) -> None:
    raw = tiny_params()
    raw["tasks"][name] = raw["tasks"].pop("tabular")
    raw["models"]["tabular-mlp"]["task"] = name
    with pytest.raises(ConfigError, match=r"- tasks: .*is not a plain name"):
        _load(tmp_path, raw)
    raw = tiny_params()
    raw["models"][name] = raw["models"].pop("tabular-mlp")
    with pytest.raises(ConfigError, match=r"- models: .*is not a plain name"):
        _load(tmp_path, raw)


def test_plain_names_with_dots_are_accepted(tmp_path: Path) -> None:
    raw = tiny_params()
    raw["tasks"]["census.v2"] = raw["tasks"].pop("tabular")
    raw["models"]["census.v2-mlp"] = raw["models"].pop("tabular-mlp")
    raw["models"]["census.v2-mlp"]["task"] = "census.v2"
    raw["retrain"]["batches"] = {"census.v2": raw["retrain"]["batches"].pop("tabular")}
    assert _load(tmp_path, raw).pair("census.v2-mlp").task == "census.v2"


@pytest.mark.parametrize(
    ("task", "suite"),
    [
        ("tabular", "../outside.json"),
        ("tabular", "/etc/suite.json"),
        ("tabular", "expectations/../../outside.json"),
        ("tabular", "https://example.org/suite.json"),
        ("images", "../images.json"),
        ("text", "/tmp/text.json"),
    ],
)
def test_a_suite_outside_the_project_is_refused(tmp_path: Path, task: str, suite: str) -> None:
    raw = _set(tiny_params(images=True), f"tasks.{task}.validate.suite", suite)
    raw["tasks"][task]["validate"]["draft_if_missing"] = True
    with pytest.raises(ConfigError, match=re.escape(f"tasks.{task}.validate.suite: ")):
        _load(tmp_path, raw)


def test_a_suite_inside_the_project_is_accepted(tmp_path: Path) -> None:
    raw = _set(tiny_params(), "tasks.tabular.validate.suite", "expectations/new/../tabular.json")
    assert _load(tmp_path, raw).task("tabular").validate_.suite == "expectations/new/../tabular.json"


# ---------------------------------------------------------------------------------------------- URLs
SHA = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/a.csv", "s3://bucket/a.csv", "https:a"]
)
def test_a_table_url_must_be_http(tmp_path: Path, url: str) -> None:
    raw = _set(tiny_params(), "tasks.tabular.ingest", {"source": "table", "url": url, "sha256": SHA})
    with pytest.raises(ConfigError, match=r"tasks\.tabular\.ingest\.url: must be an http\(s\) URL"):
        _load(tmp_path, raw)


@pytest.mark.parametrize("sha", ["g" * 64, "0" * 63, SHA + "0", "sha256:" + SHA[:57]])
def test_a_table_url_needs_a_hex_sha256(tmp_path: Path, sha: str) -> None:
    raw = _set(tiny_params(), "tasks.tabular.ingest", {"source": "table", "url": "https://x.org/a.csv"})
    with pytest.raises(ConfigError, match=r"tasks\.tabular\.ingest: a `url` needs a pinned `sha256`"):
        _load(tmp_path, raw)
    raw["tasks"]["tabular"]["ingest"]["sha256"] = sha
    with pytest.raises(ConfigError, match=r"tasks\.tabular\.ingest\.sha256: must be 64 hex characters"):
        _load(tmp_path, raw)


def test_an_upper_case_sha256_is_accepted_as_lower_case(tmp_path: Path) -> None:
    ingest = {"source": "table", "url": "https://x.org/a.csv", "sha256": SHA.upper()}
    params = _load(tmp_path, _set(tiny_params(), "tasks.tabular.ingest", ingest))
    assert params.task("tabular").ingest.sha256 == SHA


@pytest.mark.parametrize(
    ("task", "ingest", "key"),
    [
        ("tabular", {"source": "table", "path": "https://x.org/a.csv"}, "path"),
        ("images", {"source": "idx", "images": "http://x/i.idx", "labels": "l.idx"}, "images"),
        ("images", {"source": "idx", "images": "i.idx", "labels": "ftp://x/l.idx"}, "labels"),
        ("images", {"source": "npz", "path": "s3://bucket/d.npz"}, "path"),
        ("images", {"source": "image-folder", "path": "file:///data/images"}, "path"),
        ("images", {"source": "sklearn-digits", "metadata": "https://x/meta.csv"}, "metadata"),
        ("text", {"source": "text-table", "path": "https://x/reviews.csv"}, "path"),
        ("text", {"source": "text-folder", "path": "gs://bucket/reviews"}, "path"),
    ],
)
def test_a_url_where_only_paths_are_read_is_refused(
    tmp_path: Path, task: str, ingest: dict[str, Any], key: str
) -> None:
    raw = _set(tiny_params(images=True), f"tasks.{task}.ingest", ingest)
    with pytest.raises(ConfigError, match=rf"tasks\.{task}\.ingest\.{key}: .* is a URL, but this key"):
        _load(tmp_path, raw)


def test_a_batch_spec_url_is_checked_like_an_ingest_url(tmp_path: Path) -> None:
    raw = tiny_params()
    raw["retrain"]["batches"] = {"tabular": {"source": "table", "url": "ftp://x/a.csv", "sha256": SHA}}
    with pytest.raises(ConfigError, match=r"retrain\.batches\.tabular: .*url: must be an http\(s\) URL"):
        _load(tmp_path, raw)
    raw["retrain"]["batches"] = {"tabular": {"source": "table", "url": "https://x/a.csv"}}
    with pytest.raises(ConfigError, match=r"retrain\.batches\.tabular: .*needs a pinned `sha256`"):
        _load(tmp_path, raw)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--spec", f'{{"source": "table", "url": "file:///etc/passwd", "sha256": "{SHA}"}}'],
            "url: must be",
        ),
        (["--spec", '{"source": "table", "url": "https://x.org/a.csv", "sha256": "abc"}'], "sha256: must be"),
        (["--path", "https://x.org/new.csv"], "path: 'https://x.org/new.csv' is a URL"),
    ],
)
def test_dlops_batch_add_refuses_an_unpinned_or_non_http_url(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    from dlops.cli import app

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    result = CliRunner().invoke(app, ["batch", "add", "tabular", *args, "--root", str(tmp_path)])
    assert result.exit_code != 0
    assert fragment in result.stderr
    assert not (tmp_path / "data" / "batches" / "tabular.json").exists()  # nothing appended


def test_download_itself_refuses_other_schemes(tmp_path: Path) -> None:
    (tmp_path / "local.csv").write_text("a\n1\n")
    with pytest.raises(DataSourceError, match="only http"):
        download((tmp_path / "local.csv").as_uri(), SHA, tmp_path / "cache")
    with pytest.raises(DataSourceError, match="not 64 hex"):
        download("https://x.org/a.csv", "z" * 64, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_the_webhook_must_be_http(tmp_path: Path) -> None:
    raw = _set(tiny_params(), "retrain.webhook_url", "file:///tmp/hook")
    with pytest.raises(ConfigError, match=r"retrain\.webhook_url"):
        _load(tmp_path, raw)


# --------------------------------------------------------------------------------------------- secrets
@pytest.mark.parametrize(
    "key",
    ["password", "DB_PASSWORD", "passwd", "client_secret", "apiToken", "api_key", "X-Api-Key", "apikey",
     "AWS_SECRET_ACCESS_KEY", "private_key", "credentials", "auth", "basic_auth", "Authorization",
     "MLFLOW_TRACKING_TOKEN", "db.password", "DLOPS_PSEUDONYM_KEY"],
)  # fmt: skip
def test_secret_looking_keys(key: str) -> None:
    assert redact.is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["lr", "token_dropout", "tokenizer", "augment.token_dropout", "author", "max_tokens", "path"]
)
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not redact.is_secret_key(key)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"postgresql+psycopg2://mlflow:{SECRET}@db:5432/mlflow", "postgresql+psycopg2://mlflow:***@db:5432"),
        (f"https://x.org/a.csv?token={SECRET}&page=2", "token=***&page=2"),
        (f"password: {SECRET}", "password: ***"),
        (f'{{"api_key": "{SECRET}", "lr": 0.1}}', '"api_key": "***", "lr": 0.1'),
        (f"Authorization: Bearer {SECRET}", "Authorization: ***"),
        (f"curl -H 'X-Token: Bearer {SECRET}'", "'X-Token: ***'"),
        (f"connect(user='me', password='{SECRET}')", "password='***'"),
        (f"ghp_{SECRET.replace('-', '')}abcdefghijklmnop", "ghp_***"),
        ("key AKIAIOSFODNN7EXAMPLE in use", "key *** in use"),
        (f"posting to https://hooks.slack.com/services/T00/B00/{SECRET}", "https://hooks.slack.com/***"),
    ],
)
def test_redact_text(text: str, kept: str) -> None:
    out = redact.redact_text(text)
    assert SECRET not in out and "AKIAIOSFODNN7EXAMPLE" not in out and kept in out


def test_ordinary_text_is_left_alone() -> None:
    text = "token_dropout: 0.1, lr=0.003 at 12:30:01 from https://x.org/a.csv (sha256 abc)"
    assert redact.redact_text(text) == text


def test_secrets_in_params_and_tags_never_reach_mlflow(store: Path) -> None:
    params = {
        "train": {"lr": 0.01, "api_token": SECRET},
        "db": {"password": SECRET, "host": "db"},
        "source": f"https://reader:{SECRET}@data.example.org/t.csv",
        "note": f"fetched with token={SECRET}",
        "credentials": {"user": "me", "key": SECRET},
    }
    tags = {"env.MLFLOW_TRACKING_PASSWORD": SECRET, "store": f"postgresql://u:{SECRET}@db/x", "ok": "1"}
    with tracking.training_run("sec-run", "income", "mlp", params, tags) as run:
        run.set_tags({"later.auth": SECRET, "later.note": f"Bearer {SECRET}"})
    data = tracking.client().get_run(run.run_id).data
    logged = {**data.params, **data.tags}
    assert not [k for k, v in logged.items() if SECRET in v]
    assert data.params["train.lr"] == "0.01" and data.params["db.host"] == "db"
    assert data.params["train.api_token"] == data.params["db.password"] == "***"
    assert data.params["credentials"] == "***"
    assert data.params["source"] == "https://reader:***@data.example.org/t.csv"
    assert data.tags["env.MLFLOW_TRACKING_PASSWORD"] == data.tags["later.auth"] == "***"
    assert data.tags["ok"] == "1"
    report = tracking.log_report_run("sec report", {"api_key": SECRET}, {}, {})
    assert tracking.client().get_run(report).data.tags["api_key"] == "***"


def _formatted(logger: logging.Logger, emit: Any) -> str:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(redact.RedactingFilter())
    logger.addHandler(handler)
    try:
        emit()
    finally:
        logger.removeHandler(handler)
    return "\n".join(lines)


def test_the_logging_filter_redacts_messages_arguments_and_tracebacks() -> None:
    logger = logging.getLogger("dlops.test_security")
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def emit() -> None:
        logger.info("reading %s with token=%s", f"https://u:{SECRET}@h/x.csv", SECRET)
        try:
            raise ValueError(f"cannot connect to postgresql://mlflow:{SECRET}@db/mlflow")
        except ValueError:
            logger.exception("failed")

    try:
        out = _formatted(logger, emit)
    finally:
        logger.propagate = True
    assert SECRET not in out
    assert "https://u:***@h/x.csv with token=***" in out and "postgresql://mlflow:***@db" in out


def test_the_cli_logging_setup_installs_the_filter(caplog: pytest.LogCaptureFixture) -> None:
    from dlops.cli import _setup_logging

    _setup_logging()
    assert any(isinstance(f, redact.RedactingFilter) for f in caplog.handler.filters)
    _setup_logging()  # idempotent: one filter per handler
    assert sum(isinstance(f, redact.RedactingFilter) for f in caplog.handler.filters) == 1
    logging.getLogger("dlops.stages").warning("store %s", f"postgresql://mlflow:{SECRET}@db/mlflow")
    assert SECRET not in caplog.text and "mlflow:***@db" in caplog.text


def test_a_failing_webhook_is_logged_without_its_secret_path(caplog: pytest.LogCaptureFixture) -> None:
    from dlops.workspace import notify

    caplog.set_level(logging.ERROR, logger="dlops.workspace")
    url = f"http://127.0.0.1:9/services/T00/B00/{SECRET}"  # nothing listens on port 9
    assert notify(url, "retrain failed", f"token={SECRET}") is False
    assert SECRET not in caplog.text
    assert "webhook http://127.0.0.1:9/… failed" in caplog.text and "token=***" in caplog.text
