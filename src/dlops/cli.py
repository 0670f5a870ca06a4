"""The `dlops` command: one sub-command per DVC stage. It parses, calls `dlops.stages`, and reports.

Heavy libraries (torch, great_expectations, mlflow, prefect) are imported by the stages, never here,
so `dlops --help` answers at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dlops.errors import (
    EXIT_DRIFTED,
    EXIT_FAILED,
    EXIT_REJECTED,
    EXIT_TRANSIENT,
    DlopsError,
    Quarantined,
    Rejected,
    Transient,
    is_transient,
    record_outcome,
    transient_reason,
)

EXIT_CODES = (
    "Exit codes: 0 done; 1 failed (a crash, an unwritable output, a corrupt checkpoint); 3 a candidate "
    "was rejected by its gates (recorded, not a crash); 65 bad data or params, named in the message (also "
    "a quarantined batch); 75 transient (tracking server or network away): a retry may succeed; 4 drift "
    "found (`dlops drift --exit-code` only)."
)
app = typer.Typer(
    help="Train, check and register deep-learning models: the stages of dvc.yaml.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
expectations_app = typer.Typer(help="Great Expectations suites kept in the repo.", no_args_is_help=True)
app.add_typer(expectations_app, name="expectations")
batch_app = typer.Typer(help="New data for a task: check, then append or quarantine.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"dlops {version('dlops')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            envvar="DLOPS_ROOT",
            help="Project root, for every command (default: current directory).",
        ),
    ] = None,
) -> None:
    """Train, check and register deep-learning models: the stages of dvc.yaml."""
    if root is not None:  # one process per command: every `paths()` below reads it
        os.environ["DLOPS_ROOT"] = str(root.resolve())


def _names(section: str) -> Callable[[str], list[str]]:
    """Shell completion of the names under params.yaml's `section` (tasks, models) of the project."""

    def complete(incomplete: str) -> list[str]:
        import yaml

        root = Path(os.environ.get("DLOPS_ROOT") or Path.cwd())
        try:
            names = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))[section]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            return []
        return [name for name in names or {} if str(name).startswith(incomplete)]

    return complete


Task = Annotated[
    str,
    typer.Argument(help="Task name from params.yaml `tasks` (e.g. tabular).", autocompletion=_names("tasks")),
]
Pair = Annotated[
    str,
    typer.Argument(
        help="Model name from params.yaml `models` (e.g. tabular-mlp).", autocompletion=_names("models")
    ),
]
# each command's own --root: kept for scripts written before the global `dlops --root DIR <command>`
Root = Annotated[Path | None, typer.Option("--root", hidden=True)]


def _setup_logging() -> None:
    level = os.environ.get("DLOPS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("alembic", "urllib3", "great_expectations", "matplotlib", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from dlops.redact import install

    install()  # passwords, tokens and webhook URLs never reach the log


def _run(stage: str, fn: Callable[[], Any]) -> Any:
    """Call a stage; turn known failures into one clear line and the exit code of their DlopsError class
    (recorded in $DLOPS_OUTCOME_FILE too, for a flow that runs the stage through DVC)."""
    _setup_logging()
    try:
        return _reported(stage, fn)
    finally:
        _record_imports()


def _reported(stage: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if os.environ.get("DLOPS_DEBUG"):
            raise
        from dlops.redact import redact_text

        if isinstance(exc, Rejected | Quarantined):  # recorded outcomes, whatever caused them
            code, line = exc.exit_code, f"{exc.label}: {exc}"
        elif is_transient(exc):
            from dlops.tracking import server_uri

            server = server_uri()  # None unless this stage was talking to a tracking server
            where = f"tracking server {server} did not answer after retries: " if server else ""
            reason = transient_reason(exc)  # one line, whatever MLflow, SQLite or urllib3 put in it
            code, line = EXIT_TRANSIENT, f"{Transient.label}: {where}{reason}"
        elif isinstance(exc, DlopsError):
            code, line = exc.exit_code, f"{exc.label}: {exc}"
        else:
            code, line = EXIT_FAILED, f"error: {exc}"
        line = redact_text(line)  # a URL may hold a password
        record_outcome(stage, code, line)
        typer.echo(f"dlops {stage}: {line}", err=True)
        raise typer.Exit(code) from None


def _record_imports() -> None:
    """With $DLOPS_RECORD_IMPORTS set (a folder), list the dlops modules this command imported in
    <folder>/<command>@<name>.json: a test checks them against the stage's deps in dvc.lock."""
    folder = os.environ.get("DLOPS_RECORD_IMPORTS")
    if not folder:
        return
    package = Path(__file__).resolve().parent  # src/dlops
    loaded = [
        getattr(m, "__file__", None) for n, m in list(sys.modules.items()) if n.split(".")[0] == "dlops"
    ]
    files = sorted("src/dlops/" + Path(f).resolve().relative_to(package).as_posix() for f in loaded if f)
    stage = "@".join(arg for arg in sys.argv[1:3] if not arg.startswith("-"))
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{stage}.json").write_text(json.dumps(files, indent=1) + "\n", encoding="utf-8")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@app.command()
def ingest(task: Task, root: Root = None) -> None:
    """Load the task's source into data/raw/<task>.parquet."""
    from dlops import stages

    out = _run("ingest", lambda: stages.ingest(task, root))
    typer.echo(f"wrote {out}")


@app.command()
def validate(task: Task, root: Root = None) -> None:
    """Validate data/raw/<task>.parquet against its Great Expectations suite."""
    from dlops import stages

    summary = _run("validate", lambda: stages.validate(task, root))
    typer.echo(
        f"validate {task}: {summary['evaluated']} expectations, {summary['failed_warning']} warnings, passed"
    )


@app.command()
def preprocess(task: Task, root: Root = None) -> None:
    """Split, fit the transform on train only, and write the processed splits."""
    from dlops import stages

    _echo_json(_run("preprocess", lambda: stages.preprocess(task, root)))


@app.command(short_help="Train one model; resumes after an interruption, runs under torchrun.")
def train(pair: Pair, root: Root = None) -> None:
    """Train one (task, family) pair; resumes automatically after an interruption. Under torchrun each
    process trains its shard; DLOPS_NPROC_PER_NODE=N relaunches this command under torchrun itself."""
    from dlops import stages

    nproc = _nproc_per_node()
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        import subprocess

        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        command += ["-m", "dlops", "train", pair, *(["--root", str(root)] if root else [])]
        raise typer.Exit(subprocess.call(command))
    result = _run("train", lambda: stages.train(pair, root))
    if "rank" not in result:  # ranks other than 0 have nothing to report
        _echo_json(result)


@app.command(short_help="Search a model's hyperparameters with Optuna; writes the best values.")
def search(
    pair: Pair,
    root: Root = None,
    join: Annotated[
        bool, typer.Option("--join", help="Only run trials of a study `dlops search` already started.")
    ] = False,
    worker: Annotated[int, typer.Option("--worker", min=0, help="Worker number: seeds its sampler.")] = 0,
) -> None:
    """Search hyperparameters (models.<pair>.search, Optuna) on the train/val splits; writes the best
    values to reports/search/<pair>.json for `train`. `--join` from other processes or machines sharing
    the study's storage (DLOPS_OPTUNA_STORAGE) adds workers to a running search."""
    from dlops import stages

    _echo_json(_run("search", lambda: stages.search(pair, root, join=join, worker=worker)))


def _nproc_per_node() -> int:
    value = os.environ.get("DLOPS_NPROC_PER_NODE", "").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        typer.echo(f"dlops train: DLOPS_NPROC_PER_NODE must be a positive integer, got {value!r}", err=True)
        raise typer.Exit(EXIT_FAILED)
    return int(value)


@app.command()
def evaluate(pair: Pair, root: Root = None) -> None:
    """Metrics, fairness and overfitting diagnosis on the test split."""
    from dlops import stages
    from dlops.gates import HEADLINE_PREFIXES

    scores = _run("evaluate", lambda: stages.evaluate(pair, root))
    shown = {k: v for k, v in scores.items() if k.startswith(HEADLINE_PREFIXES) and "/class/" not in k}
    _echo_json(shown)


@app.command(short_help="Few labels: a classifier from scratch vs from a pretrained encoder.")
def pretraining(
    name: Annotated[str, typer.Argument(help="Study name from params.yaml `pretraining`.")],
    root: Root = None,
) -> None:
    """A classifier on few labels, from scratch vs pretrained without labels (a CNN from an autoencoder's
    encoder, a text RNN/Transformer on masked tokens); writes reports/pretraining/NAME.json and logs to
    MLflow."""
    from dlops import stages

    report = _run("pretraining", lambda: stages.pretraining(name, root))
    typer.echo(
        f"pretraining {name}: {report['label_fraction']:.0%} of the labels "
        f"({report['labelled_rows']['train']} training rows), test accuracy "
        f"scratch {report['scratch']['accuracy']:.4f}, pretrained {report['pretrained']['accuracy']:.4f} "
        f"(gain {report['gain']['accuracy']:+.4f}, "
        f"better in {report['wins']} of {len(report['seeds'])} seeds)"
    )


@app.command()
def register(pair: Pair, root: Root = None) -> None:
    """Register the candidate; promote it to @champion only when every gate passes."""
    from dlops import stages

    report = _run("register", lambda: stages.register(pair, root))
    typer.echo(f"register {pair}: version {report['version']} {_register_verdict(report)}")
    for reason in report["reasons"]:
        typer.echo(f"  - {reason}")


def _register_verdict(report: dict[str, Any]) -> str:
    """What happened to the version, in the words of its `decision` tag."""
    version, champion_now = str(report["version"]), report.get("current_champion")
    stays = f"@champion stays v{champion_now}" if champion_now else "there is no champion"
    if report["promoted"]:
        return "promoted to @champion"
    if champion_now == version:
        kept = report.get("verdict") == "promoted"
        return "is already @champion" if kept else "rejected (it keeps @champion until another is promoted)"
    if report.get("verdict") == "held":
        return f"held for a person to promote (`dlops promote`); {stays}"
    return f"{report.get('verdict', 'not promoted')}; {stays}"


@app.command()
def champion(pair: Pair, root: Root = None) -> None:
    """Show the current @champion of a pair: version, run and decision tags."""
    from dlops import stages

    _echo_json(_run("champion", lambda: stages.champion(pair, root)))


@app.command()
def promote(
    pair: Pair,
    version: Annotated[str, typer.Argument(help="Registered version number to make @champion.")],
    override: Annotated[bool, typer.Option("--override", help="Promote despite a failed gate.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (required with --override).")] = "",
    root: Root = None,
) -> None:
    """A human decision: make VERSION the @champion (the old one becomes @previous)."""
    from dlops import stages

    done = _run("promote", lambda: stages.promote(pair, version, override, reason, root))
    typer.echo(f"{done['model_name']} v{done['version']}: {done.get('what', done['verdict'])}")


@app.command()
def rollback(
    pair: Pair,
    reason: Annotated[str, typer.Option("--reason", help="Why the champion is rolled back.")] = "",
    root: Root = None,
) -> None:
    """Restore the @previous champion in one step (recorded as a decision)."""
    from dlops import stages

    done = _run("rollback", lambda: stages.rollback(pair, reason, root))
    typer.echo(f"{done['model_name']}: v{done['rolled_back']} rolled back, v{done['version']} is @champion")


@app.command(short_help="The whole pipeline (dvc repro holding the workspace), then the leaderboard.")
def run(
    wait: Annotated[
        float | None,
        typer.Option("--wait", help="Seconds to wait for another run (default: retrain.lock_timeout_s)."),
    ] = None,
    root: Root = None,
) -> None:
    """The whole pipeline: `dvc repro --keep-going` holding the workspace (a second run waits, then
    stops), then the leaderboard, recorded in MLflow. A failed stage stops its branch at once, the
    others run, and every output goes back to what dvc.lock records; the run then ends with the failure
    (the leaderboard, unprinted, is one `dlops leaderboard` away). Exit codes: 0 every stage passed;
    3 the only failures are candidates rejected by their gates (named); otherwise the first failed
    stage's: 65 bad data or params, 75 transient (a tracking server did not answer), 128 + N stopped by
    signal N, 1 anything else."""
    from dlops.workspace import repro

    code, failed = _run("run", lambda: repro(root, wait))
    if code and not failed:  # DVC itself failed (a bad dvc.yaml, its lock) or a stage was killed
        typer.echo(f"dlops run: dvc repro failed (its exit code {code}; its output is above)", err=True)
        raise typer.Exit(EXIT_FAILED)
    rejected = [f for f in failed if f["exit_code"] == EXIT_REJECTED]
    broken = [f for f in failed if f["exit_code"] != EXIT_REJECTED]
    if not broken:  # after a real failure the failure is the run's outcome, not the table
        leaderboard(log=True, as_json=False, root=root)
    for outcome in rejected:
        typer.echo(f"dlops run: {outcome['stage']}: {outcome['message']}", err=True)
    for outcome in broken:
        typer.echo(f"dlops run: {outcome['stage']} failed: {outcome['message']}", err=True)
    if broken:
        typer.echo("dlops run: no leaderboard after a failed stage; `dlops leaderboard` prints it", err=True)
        raise typer.Exit(int(broken[0]["exit_code"]) or EXIT_FAILED)
    if rejected:
        names = ", ".join(f["stage"].split("@", 1)[-1] for f in rejected)
        typer.echo(
            f"dlops run: every stage ran; rejected by their gates: {names} (exit {EXIT_REJECTED})", err=True
        )
        raise typer.Exit(EXIT_REJECTED)
    if code:  # a stage failed without recording why (killed)
        typer.echo(f"dlops run: a stage stopped without saying why (dvc repro exit {code})", err=True)
        raise typer.Exit(EXIT_FAILED)


@app.command()
def predict(
    pair: Pair,
    source: Annotated[
        Path, typer.Option("--input", help="Rows: .csv .tsv .parquet .jsonl; images: .npz .npy.")
    ],
    output: Annotated[Path, typer.Option("--output", help="Predictions: .csv .parquet or .jsonl.")],
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="A registered version (default: @champion).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per batch.")] = 1024,
    root: Root = None,
) -> None:
    """Score a file with the registered model in batches (the pyfunc `mlflow models serve` runs)."""
    from dlops import stages

    done = _run("predict", lambda: stages.predict(pair, source, output, model_version, batch_size, root))
    typer.echo(f"predict {pair}: {done['rows']} rows -> {output} ({done['rows_per_s']} rows/s)")


@app.command()
def leaderboard(
    log: Annotated[bool, typer.Option("--log", help="Also record it as an MLflow run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    root: Root = None,
) -> None:
    """Every model's test metrics, fairness gaps and registry standing, across tasks and families."""
    from dlops import leaderboard as board
    from dlops import stages

    table = _run("leaderboard", lambda: stages.leaderboard(log, root))
    if as_json:
        _echo_json(table)
    else:
        board.print_table(table)


@app.command()
def lineage(
    uri: Annotated[str, typer.Argument(help="models:/<name>/<version> or models:/<name>@<alias>")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    restore: Annotated[
        bool, typer.Option("--restore", help="Bring back its raw data (by md5) under restored/.")
    ] = False,
    root: Root = None,
) -> None:
    """Where a registered model comes from (run, commit, data version) and how to restore them."""
    from dlops import stages

    if restore:
        typer.echo(f"restored {_run('lineage', lambda: stages.restore_data(uri, root))}")
        return

    chain = _run("lineage", lambda: stages.lineage(uri, root))
    if as_json:
        _echo_json(chain)
    else:
        from dlops.lineage import render

        typer.echo(render(chain))


def _names_list(value: str | None) -> list[str] | None:
    """`a,b` -> [a, b]; None stays None (infer); an empty string is an empty list (none)."""
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@app.command("add-task", short_help="Add a task and its models to params.yaml from a data file.")
def add_task(
    name: Annotated[str, typer.Argument(help="The new task's name (lowercase letters, digits, '-').")],
    source: Annotated[
        Path, typer.Option("--from", help="CSV/TSV/Parquet/JSONL table, IDX images file, .npz or folder.")
    ],
    label: Annotated[str | None, typer.Option("--label", help="The label column.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="The free-text column (a text task).")] = None,
    sensitive: Annotated[
        str | None, typer.Option("--sensitive", help="Columns measured for fairness, COL,... ('' for none).")
    ] = None,
    ignore: Annotated[str | None, typer.Option("--ignore", help="Columns to drop, COL,...")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="tabular, text or images (default: inferred).")
    ] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="The dataset's own test file or folder, kept as test.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; take the inferred roles.")] = False,
    root: Root = None,
) -> None:
    """Write tasks.NAME and its models into params.yaml from FILE's columns (roles given or inferred,
    sensitive columns named), ingest it and draft its expectation suite, then print the next command.
    Asks before writing when run in a terminal, unless --yes."""
    from dlops import add_task as adding
    from dlops.add_task_inference import Choices

    if kind is not None and kind not in adding.drafted_kinds():
        raise typer.BadParameter(f"--kind must be one of {', '.join(adding.drafted_kinds())}, got {kind!r}")
    choices = Choices(label, text, _names_list(sensitive), _names_list(ignore) or [], kind, test)
    planned = _run("add-task", lambda: adding.plan(name, source, choices, root))
    if sys.stdin.isatty() and not yes:
        adding.print_roles(planned)
        if not typer.confirm(f"Write task {name!r} and its models to params.yaml?", default=True):
            typer.echo("nothing written")
            raise typer.Exit(1)
    suite = _run("add-task", lambda: adding.apply(planned, root))
    for line in adding.summary(planned, suite, root):
        typer.echo(line)


@expectations_app.command("init")
def expectations_init(
    task: Task,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing suite.")] = False,
    root: Root = None,
) -> None:
    """Draft a suite by profiling the task's raw table; review it, then commit it."""
    from dlops import stages

    path = _run("expectations init", lambda: stages.draft_expectations(task, root, force))
    typer.echo(f"drafted {path}; review it like code before committing")


BatchDate = Annotated[
    str | None, typer.Option("--date", help="The batch's date, YYYY-MM-DD (default today, UTC).")
]
BatchSpec = Annotated[
    str | None,
    typer.Option(
        "--spec",
        help='The batch as a source, JSON like tasks.<task>.ingest, e.g. \'{"path": "new.csv"}\' or '
        '\'{"seed": 8, "rows": 2000, "shift": {"age": 8}}\'. Default: retrain.batches.<task>.',
    ),
]
BatchPath = Annotated[str | None, typer.Option("--path", help="Shorthand for --spec '{\"path\": PATH}'.")]


def _batch_spec(task: str, spec: str | None, path: str | None, root: Path | None) -> dict[str, Any]:
    if spec is not None and path is not None:
        raise typer.BadParameter("give --spec or --path, not both")
    if path is not None:
        return _path_spec(task, path, root)
    if spec is not None:
        try:
            parsed = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--spec is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise typer.BadParameter("--spec must be a JSON object")
        return parsed
    from dlops.intake import scheduled_spec
    from dlops.params import load_params, paths

    return _run("batch", lambda: scheduled_spec(load_params(paths(root).params), task))  # type: ignore[no-any-return]


def _path_spec(task: str, path: str, root: Path | None) -> dict[str, Any]:
    """`--path PATH` as the task kind's source spec."""
    from dlops.kinds import kind_of
    from dlops.params import load_params, paths

    task_cfg = _run("batch", lambda: load_params(paths(root).params).task(task))
    return kind_of(task_cfg).batch_spec_for_path(path)


@batch_app.command("add")
def batch_add(
    task: Task, spec: BatchSpec = None, path: BatchPath = None, date: BatchDate = None, root: Root = None
) -> None:
    """Check a new batch against the task's suite; append it (a new DVC version) or quarantine it."""
    from dlops import intake

    chosen = _batch_spec(task, spec, path, root)
    _echo_json(_run("batch add", lambda: intake.add_batch(task, chosen, date, root)))


@batch_app.command("list")
def batch_list(task: Task, root: Root = None) -> None:
    """The accepted batches of a task, oldest first (data/batches/<task>.json)."""
    from dlops import intake

    _echo_json(_run("batch list", lambda: intake.list_batches(task, root)))


@app.command(short_help="Compare a batch with the task's training data; says whether it drifted.")
def drift(
    task: Task,
    spec: BatchSpec = None,
    path: BatchPath = None,
    date: BatchDate = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not record an MLflow run.")] = False,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help=f"Exit {EXIT_DRIFTED} when the batch drifted (for scripts).")
    ] = False,
    root: Root = None,
) -> None:
    """Compare a batch with the task's training data (PSI/KS, label balance, text length and OOV rate,
    pixel statistics); the JSON says `drifted`, and the exit code is 0 unless `--exit-code`."""
    from dlops import intake

    chosen = _batch_spec(task, spec, path, root)
    report = _run("drift", lambda: intake.check_drift(task, chosen, date, root, log_run=not no_log))
    _echo_json({k: v for k, v in report.items() if k != "markdown"})
    if exit_code and report["drifted"]:
        raise typer.Exit(EXIT_DRIFTED)


@app.command(short_help="Serve the retraining flow and drift monitor on a Prefect server.")
def schedule(
    once: Annotated[
        bool, typer.Option("--print", help="Print the deployments and schedules, then exit.")
    ] = False,
    work_pool: Annotated[
        str | None,
        typer.Option(
            "--work-pool",
            help="Register the deployments into this Prefect work pool (type process, created when "
            "missing) for `prefect worker start --pool POOL` to run, print them, and exit.",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="With --work-pool: where workers find the code: a directory at the same path on every "
            "worker (default: the project root) or a git URL (https://.../repo.git) cloned per run.",
        ),
    ] = None,
    root: Root = None,
) -> None:
    """Serve the retraining flow (cron from params `retrain.schedule`) and the drift monitor against the
    Prefect server at PREFECT_API_URL; runs until stopped. With --work-pool, register the same
    deployments into a work pool for Prefect workers on any machine instead, and exit."""
    if source and not work_pool:
        raise typer.BadParameter("--source is where workers find the code: it needs --work-pool")
    from pipelines.schedule import deploy_to_pool, describe, serve_all

    if once:
        _echo_json(_run("schedule", lambda: describe(root)))
        return
    if work_pool:
        pool = work_pool
        deployed = _run("schedule", lambda: deploy_to_pool(pool, root, source))
        if deployed["work_pool"]["created"]:
            typer.echo(f"dlops schedule: created work pool {pool!r} (type process)", err=True)
        _echo_json(deployed)
        return
    _run("schedule", lambda: serve_all(root))


@app.command("check-params")
def check_params(root: Root = None) -> None:
    """Parse params.yaml and report every invalid key, and a dag.yaml that no longer matches it."""
    from dlops import dag
    from dlops.params import load_params, paths

    def checked() -> Any:
        p = paths(root)
        params = load_params(p.params)
        dag.check(params, p)
        return params

    params = _run("check-params", checked)
    typer.echo(f"params.yaml ok: tasks {sorted(params.tasks)}, models {sorted(params.models)}")


@app.command("dag")
def write_dag(root: Root = None) -> None:
    """Write dag.yaml (what dvc.yaml reads of params.yaml) and reports/dvc.yaml (the plots DVC draws)."""
    from dlops import dag
    from dlops.params import load_params, paths

    def written() -> bool:
        p = paths(root)
        return dag.write(load_params(p.params), p)

    changed = _run("dag", written)
    typer.echo("dag.yaml, reports/dvc.yaml written" if changed else "dag.yaml, reports/dvc.yaml up to date")


if __name__ == "__main__":  # pragma: no cover
    app()
