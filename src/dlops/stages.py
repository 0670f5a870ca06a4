"""One function per DVC stage: params and paths in, files out. Shared by the CLI and the Prefect flow.

Every function reads params through `load_params()` (the only reader of params.yaml), writes its
outputs atomically, and raises a specific error naming the file, column or key when an input is bad.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from dlops.errors import DlopsError
from dlops.files import write_json
from dlops.kinds import kind_of
from dlops.params import SPLITS, ConfigError, Params, Paths, TaskConfig, load_params, params_hash, paths

log = logging.getLogger(__name__)


def _context(root: Path | None = None) -> tuple[Params, Paths]:
    p = paths(root)
    params = load_params(p.params)
    if os.environ.get("DVC_STAGE"):  # run by `dvc repro`: its DAG must say what params.yaml says
        from dlops import dag

        dag.check(params, p)
    return params, p


class OutputError(DlopsError, OSError):
    """A stage's output folder cannot be written; raised before the stage does any work."""


def _writable(p: Paths, *folders: Path) -> None:
    """Stop before any work when another pipeline run holds the workspace, or when an output folder
    cannot be written (read-only, a file in the way, no permission): a stage that failed at its last
    write would have spent its run for nothing."""
    from dlops.workspace import ensure_free

    ensure_free(p.root)
    for folder in folders:
        where = folder.relative_to(p.root) if folder.is_relative_to(p.root) else folder
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{where}: output folder is a file; move it away (nothing was written)")
        probe = folder / f".dlops-write-probe.{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.touch()
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            message = f"{where}: output folder is not writable ({reason}); nothing was written"
            raise OutputError(message) from None


# ---------------------------------------------------------------------------------------------- ingest
def ingest(task: str, root: Path | None = None) -> Path:
    """Load the task's source (built-in generator or a real table) into data/raw/<task>.parquet."""
    params, p = _context(root)
    task_cfg = params.task(task)
    _writable(p, p.raw(task).parent)
    frame = _write_raw(task, task_cfg, p)
    _ensure_suite(task, task_cfg, p, frame)
    return p.raw(task)


def _write_raw(task: str, task_cfg: TaskConfig, p: Paths) -> Any:
    """The source's rows, then every accepted batch of the task (data/batches/<task>.json), in order."""
    import pandas as pd

    from dlops.batches import accepted_frames
    from dlops.files import write_parquet

    frame = kind_of(task_cfg).load(task_cfg, p.root)
    if batches := accepted_frames(p, task):
        frame = pd.concat([frame, *batches], ignore_index=True)
    write_parquet(frame, p.raw(task))
    log.info(
        "ingest %s: %d rows x %d columns (%d accepted batches) -> %s",
        task,
        len(frame),
        frame.shape[1],
        len(batches),
        p.raw(task),
    )
    return frame


def _ensure_suite(task: str, task_cfg: TaskConfig, p: Paths, frame: Any) -> None:
    """A table seen for the first time needs a suite before `validate` can run: draft one from it when
    params allow (TFDV's "infer, then validate"), else stop here with the command that drafts it."""
    suite_path = p.suite(task_cfg)
    if suite_path.is_file():
        return
    where = f"tasks.{task}.validate"
    if not task_cfg.validate_.draft_if_missing:
        raise FileNotFoundError(
            f"{suite_path}: no expectation suite for task {task!r} ({where}.suite); draft it with "
            f"`dlops expectations init {task}`, or set {where}.draft_if_missing: true"
        )
    from dlops.data.validation import save_suite

    save_suite(_draft(task, task_cfg, frame), suite_path)
    log.warning(
        "ingest %s: drafted %s from this table; review it and commit it with the code", task, suite_path
    )


# -------------------------------------------------------------------------------------------- validate
def validate(task: str, root: Path | None = None) -> dict[str, Any]:
    """Check data/raw/<task>.parquet against the task's committed suite; raise on a critical failure."""
    import pandas as pd

    from dlops.data.validation import limits_hint, load_suite, params_disagreement, raise_on_failure

    params, p = _context(root)
    task_cfg = params.task(task)
    _writable(p, p.validation_report(task).parent)
    suite_path = p.suite(task_cfg)
    if not suite_path.is_file():
        raise FileNotFoundError(
            f"{suite_path}: no expectation suite for task {task!r}; "
            f"draft one with `dlops expectations init {task}`"
        )
    raw = pd.read_parquet(p.raw(task))
    suite = load_suite(suite_path)
    changed = params_disagreement(suite, task_cfg.validate_)
    for line in changed:
        log.warning("validate %s: %s (the suite's limit applies)", task, line)
    summary = kind_of(task_cfg).validate(raw, suite, task_cfg, p.data_docs(task))
    write_json(p.validation_report(task), summary)
    hint = limits_hint(summary, str(suite_path.relative_to(p.root)), task, changed)
    raise_on_failure(summary, source=str(p.raw(task).relative_to(p.root)), hint=hint)
    return summary


def draft_expectations(task: str, root: Path | None = None, force: bool = False) -> Path:
    """Profile the task's raw table into a draft suite at the path params name (`dlops expectations init`)."""
    import pandas as pd

    from dlops.data.validation import save_suite

    params, p = _context(root)
    task_cfg = params.task(task)
    suite_path = p.suite(task_cfg)
    if suite_path.exists() and not force:
        raise FileExistsError(f"{suite_path} exists; pass --force to overwrite it")
    raw = p.raw(task)
    frame = pd.read_parquet(raw) if raw.exists() else _write_raw(task, task_cfg, p)
    save_suite(_draft(task, task_cfg, frame), suite_path)
    return suite_path


def _draft(task: str, task_cfg: TaskConfig, frame: Any) -> dict[str, Any]:
    """The kind's drafted suite, its meta recording the `validate` params its limits came from."""
    from dlops.data.validation import drafted_params

    suite = kind_of(task_cfg).draft_suite(task, task_cfg, frame)
    meta = suite.setdefault("meta", {}).setdefault("dlops", {})
    meta["validate"] = drafted_params(task_cfg.validate_)
    return suite


# ------------------------------------------------------------------------------------------ preprocess
def preprocess(task: str, root: Path | None = None) -> dict[str, int]:
    """Split (seeded; copies and batches kept apart as the kind does it), fit the transform on train
    only; write the splits and transform.json under data/processed/<task>."""
    import pandas as pd

    from dlops.batches import blocks

    params, p = _context(root)
    task_cfg = params.task(task)
    _writable(p, p.processed(task))
    raw = pd.read_parquet(p.raw(task))
    parts = blocks(p, task, len(raw))  # the source's rows, then each accepted batch
    return kind_of(task_cfg).preprocess(task, task_cfg, raw, p, parts)


# ---------------------------------------------------------------------------------------------- train
def train(pair: str, root: Path | None = None, max_epochs: int | None = None) -> dict[str, Any]:
    """Train one (task, family) pair; write models/<pair>/model.pt and its history; log to MLflow.

    Under `torchrun` every process trains its shard; only rank 0 logs, warm-starts and writes files."""
    from dlops.pairs import training as pair_training
    from dlops.training import distributed
    from dlops.training.device import select_device

    params, p = _context(root)
    entry = params.pair(pair)
    _writable(p, p.model_dir(pair), p.history(pair).parent, p.resume_checkpoint(pair).parent)
    device = select_device(entry.train.device)
    with distributed.session(device) as world:
        if world.is_main:
            return pair_training.train_and_record(pair, params, p, device, world.size, max_epochs)
        pair_training.train_replica(pair, params, p, max_epochs)
        return {"rank": world.rank}


# --------------------------------------------------------------------------------------------- search
def search(pair: str, root: Path | None = None, join: bool = False, worker: int = 0) -> dict[str, Any]:
    """Stage `search`: an Optuna study over `models.<pair>.search` on the train/val splits; writes the
    best values to reports/search/<pair>.json, which `train` reads. A pair whose search is null has no
    search stage and trains with params.yaml's values: the command says so and writes nothing. `join`:
    only run trials of the study another `dlops search` started (another process or machine on the same
    storage); writes nothing."""
    from dlops.pairs import search as pair_search

    params, p = _context(root)
    entry = params.pair(pair)
    out = p.search_result(pair)
    if entry.search is None:
        if join:
            raise ConfigError(f"models.{pair}.search is null: there is no study to join")
        log.info("models.%s.search is null: nothing to search; train uses params.yaml's values", pair)
        return {"search": None}
    if not join:
        _writable(p, out.parent)
    result = pair_search.run(pair, params, p, join, worker)
    if join:
        return result
    write_json(out, result)
    return {k: result[k] for k in ("study", "trials", "best", "default", "improvement")}


# ------------------------------------------------------------------------------------------- evaluate
def evaluate(pair: str, root: Path | None = None) -> dict[str, Any]:
    """Metrics on every split, fairness/bias on test, overfitting diagnosis, plots, by the family's kind
    (classifier, anomaly detector, generator); JSON for DVC, everything to MLflow."""
    from dlops import objectives, tracking
    from dlops.files import file_sha256
    from dlops.gates import headline
    from dlops.pairs.setup import model_split
    from dlops.privacy.dp import privacy_metrics
    from dlops.training.checkpoint import load_model

    params, p = _context(root)
    entry = params.pair(pair)
    _writable(p, p.eval_dir(pair))
    model, meta = load_model(p.checkpoint(pair))
    classes = [str(c) for c in meta["classes"]]
    out = p.eval_dir(pair)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    history = json.loads(p.history(pair).read_text())
    kind = kind_of(params.task(entry.task))
    splits = {split: model_split(p, kind, entry, split) for split in SPLITS}  # train: its max_rows
    scores = objectives.evaluate(model, p, kind, entry, splits, classes, history, out)
    scores.update(privacy_metrics(meta.get("privacy")))  # DP-SGD's spent budget (none without)
    write_json(p.eval_metrics(pair), scores)
    write_json(p.eval_headline(pair), headline(scores, entry.gates))

    tracking.configure(p.root, params.mlflow)
    run_id = tracking.find_run(pair, file_sha256(p.checkpoint(pair)))
    if run_id is None:
        log.warning("evaluate %s: no MLflow training run carries this model; metrics stay in %s", pair, out)
    else:
        tracking.log_evaluation(run_id, scores, out)
    return scores


# ---------------------------------------------------------------------------------------- pretraining
def pretraining(name: str, root: Path | None = None) -> dict[str, Any]:
    """Stage `pretraining`: a classifier on `label_fraction` of the labels, from scratch and from an
    encoder trained without labels: a CNN from an autoencoder's or VAE's (evaluation/pretraining.py), a
    text RNN or Transformer from its own body pretrained on masked tokens (evaluation/text_pretraining.py);
    writes reports/pretraining/<name>.json and logs one MLflow run `pretraining:<name>` with both arms."""
    import tempfile

    from dlops import tracking
    from dlops.evaluation import pretraining as study_lib
    from dlops.pairs.setup import task_classes_and_shape

    params, p = _context(root)
    if name not in params.pretraining:
        raise ConfigError(f"pretraining: unknown study {name!r}; known: {sorted(params.pretraining)}")
    study = params.pretraining[name]
    out = p.pretraining_report(name)
    _writable(p, out.parent)
    classifier = params.pair(study.classifier)
    kind = kind_of(params.task(study.task))
    classes, input_shape = task_classes_and_shape(p, kind, study.task)
    data = {}
    for split in SPLITS:
        x, y, _ = kind.load_split(p, study.task, split)
        data[split] = (x, y)
    if study.encoder is None:  # a text classifier: its own body, pretrained on masked tokens
        prepare = _masked_token_encoder(p, params, study, data, len(classes), input_shape)
    else:
        prepare = _autoencoder_encoder(p, params, study, data, len(classes), input_shape)
    family, config, load_encoder, encoder_report, encoder_settings = prepare
    task_cfg = params.task(study.task)
    augment = kind.batch_augment(task_cfg, len(classes)) if classifier.train.augment else None
    report = study_lib.run_study(
        study,
        family=family,
        config=config,
        load_encoder=load_encoder,
        train=classifier.train,
        data=data,
        num_classes=len(classes),
        input_shape=input_shape,
        augment=augment,
    )
    report = {
        "study": name,
        "task": study.task,
        "classifier": study.classifier,
        "encoder": encoder_report,
        **({"channels": config["channels"]} if family == "cnn" else {}),
        **report,
    }
    write_json(out, report)
    settings = {"study": study.model_dump(mode="json"), "train": classifier.train.model_dump(mode="json")}
    settings["encoder"] = encoder_settings
    digest = params_hash({**settings, "model": classifier.model})
    tracking.configure(p.root, params.mlflow)
    tags = {**tracking.lineage_tags(p.root, study.task, digest), "dlops.study": name}
    if "sha256" in report["encoder"]:
        tags["pretraining.encoder_sha256"] = report["encoder"]["sha256"]
    with tempfile.TemporaryDirectory(prefix="dlops-pretraining-") as tmp:
        figure = study_lib.plot_study(Path(tmp) / f"{name}.png", report, name)
        tracking.log_report_run(
            f"pretraining:{name}",
            tags,
            study_lib.study_metrics(report),
            {"pretraining.json": json.dumps(report, indent=2, sort_keys=True, default=str)},
            params={**settings, "model": classifier.model},
            files=[figure],
        )
    return report


Prepared = tuple[str, dict[str, Any], Any, dict[str, Any], dict[str, Any]]


def _autoencoder_encoder(
    p: Paths, params: Params, study: Any, data: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]
) -> Prepared:
    """A CNN study's encoder: the autoencoder or VAE entry trained here on every training image
    (`encoder_data: all`) or its stage's model file (`model`). Returns (family, the classifier's model
    config, the loader of the encoder's tensors, the report's `encoder` section, the logged settings)."""
    from dlops.evaluation import pretraining as study_lib
    from dlops.files import file_sha256
    from dlops.training.checkpoint import load_safe

    assert study.encoder is not None
    encoder_entry = params.pair(study.encoder)
    if study.encoder_data == "all":  # self-supervised: every training image, labels unused
        encoder = study_lib.train_encoder(
            encoder_entry.family, encoder_entry.model, encoder_entry.train, data, num_classes, input_shape
        )
        source = {"trained_on_classes": "all", "trained_here": True, "best_epoch": encoder["best_epoch"]}
    else:
        encoder_file = p.checkpoint(study.encoder)
        encoder = load_safe(encoder_file)
        source = {  # what the encoder learned from: an anomaly model sees only its normal classes
            "trained_on_classes": encoder_entry.model.get("normal_classes") or "all",
            "file": str(encoder_file.relative_to(p.root)),
            "sha256": file_sha256(encoder_file),
        }
    config, load = study_lib.cnn_from_encoder(dict(params.pair(study.classifier).model), encoder)
    report = {"model": study.encoder, "family": encoder["family"], "data": study.encoder_data, **source}
    settings = {"model": encoder_entry.model, "train": encoder_entry.train.model_dump(mode="json")}
    return "cnn", config, load, report, settings


def _masked_token_encoder(
    p: Paths, params: Params, study: Any, data: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]
) -> Prepared:
    """A text study's encoder: the classifier's own architecture pretrained on masked tokens of every
    training text with the classifier's train settings (`encoder_epochs`), labels unused."""
    from dlops.evaluation import text_pretraining

    entry = params.pair(study.classifier)
    kind = kind_of(params.task(study.task))
    config = kind.model_config(json.loads(p.transform(study.task).read_text()), entry.model)
    update: dict[str, Any] = {"init_from": None, "freeze": [], "head_lr": None, "reweigh": []}
    update["monitor"] = "val_loss"  # a masked-token model has no accuracy to follow
    train = entry.train.model_copy(update={**update, "epochs": study.encoder_epochs or entry.train.epochs})
    tensors, summary = text_pretraining.train_masked_encoder(
        entry.family, config, train, data, num_classes, input_shape, study.mask_fraction
    )
    report = {"model": study.classifier, "family": entry.family, "data": "all", **summary}
    settings = {"objective": "masked-tokens", "train": train.model_dump(mode="json")}
    return entry.family, config, text_pretraining.body_loader(tensors), report, settings


# ------------------------------------------------------------------------------------------- register
def register(pair: str, root: Path | None = None) -> dict[str, Any]:
    """Register the candidate with its gates, compare it with the champion on the same test rows, and
    promote it to @champion only as the policy in params allows. Raises GateFailure when a gate fails."""
    from dlops import objectives, tracking
    from dlops.files import file_sha256
    from dlops.gates import GateFailure
    from dlops.model_card import build_card
    from dlops.training.checkpoint import load_safe

    params, p = _context(root)
    entry = params.pair(pair)
    _writable(p, p.register_report(pair).parent)
    task_cfg = params.task(entry.task)
    scores = json.loads(p.eval_metrics(pair).read_text())
    load_safe(p.checkpoint(pair))  # a corrupt file is named as such, not as "no run carries this sha"
    sha = file_sha256(p.checkpoint(pair))
    tracking.configure(p.root, params.mlflow)
    run_id = tracking.find_run(pair, sha)
    if run_id is None:
        raise RuntimeError(
            f"register {pair}: no MLflow run carries model {sha[:12]} (was the tracking store reset?); "
            f"rerun training with `dvc repro -f -s train@{pair}`"
        )
    served = objectives.serving_plan(p, kind_of(task_cfg), entry, task_cfg, pair, scores)
    extra_tags = {
        "data.test_split": file_sha256(kind_of(task_cfg).split_file(p, entry.task, "test")),
        "params.hash": params_hash(entry),
    }
    if split := json.loads(p.transform(entry.task).read_text(encoding="utf-8")).get("split"):
        from dlops.data.splitting import provenance_tag

        extra_tags["data.split"] = provenance_tag(split)  # given or by fractions, leaked copies
    flat_params = tracking.flatten_params(
        {
            "model": entry.model,
            "train": entry.train.model_dump(mode="json"),
            "gates": entry.gates.model_dump(),
        }
    )

    def card(report: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        return build_card(
            pair=pair,
            entry=entry,
            report=report,
            tags=tags,  # the lineage recorded at training time, not today's checkout
            scores=scores,
            eval_dir=p.eval_dir(pair),
            validation_summary=p.validation_report(entry.task),
            params=flat_params,
        )

    report = tracking.register(
        pair=pair,
        run_id=run_id,
        model_sha256=sha,
        metrics=scores,
        gates=entry.gates,
        cfg=params.mlflow,
        artifacts=served.artifacts,
        raw_example=served.example,
        extra_tags=extra_tags,
        score_champion=served.score_champion,
        python_model=served.python_model,
        tabular_signature=served.tabular_signature,
        paired=served.paired,
        card=card,
        control=entry.gates.control,
    )
    receipt = p.register_report(pair)
    if entry.gates.control is not None:  # a control: registered, never promoted; its gate must catch it
        return _control_receipt(pair, entry.gates.control, report, receipt, sha)
    if not all(check["passed"] for check in report["checks"]):
        from dlops.gates import Decision

        receipt.unlink(missing_ok=True)
        raise GateFailure(Decision.from_dict(report))
    # The stage's DVC output: a receipt kept in the DVC cache, not in git, so a fresh clone (whose
    # MLflow store is empty) registers again instead of finding `register` up to date. Only what is
    # the same in any store goes in it (not the verdict, which depends on the champion there), so two
    # runners and two clones write the same dvc.lock.
    write_json(receipt, {"model_name": report["model_name"], "model_sha256": sha, "gates_passed": True})
    return report


def _control_receipt(
    pair: str, control: str, report: dict[str, Any], receipt: Path, sha: str
) -> dict[str, Any]:
    """A control's registration succeeds when the gate it was built to fail rejected it (its receipt
    says so) and fails, with no receipt, when that gate passed it."""
    from dlops.gates import ControlNotCaught

    if not report["control_caught"]:
        receipt.unlink(missing_ok=True)
        raise ControlNotCaught(
            f"register {pair}: models.{pair} is a control built to fail gates.{control}, and it passed it "
            f"(version {report['version']}, not promoted): the gate does not catch what the control shows"
        )
    write_json(receipt, {"model_name": report["model_name"], "model_sha256": sha, "control": control})
    return report


def predict(
    pair: str,
    src: Path,
    dst: Path,
    version: str | None = None,
    batch_size: int = 1024,
    root: Path | None = None,
) -> dict[str, Any]:
    """`dlops predict`: score `src` with the pair's @champion (or registered `version`) into `dst`."""
    from dlops import tracking
    from dlops.predict import predict_file

    params, p = _context(root)
    params.pair(pair)
    tracking.configure(p.root, params.mlflow)
    if version is None:
        model = tracking.load_champion(pair, params.mlflow)
    else:
        model = tracking.load_registered(f"models:/{tracking.model_name(pair, params.mlflow)}/{version}")
    return predict_file(model, src, dst, batch_size)


def champion(pair: str, root: Path | None = None) -> dict[str, Any] | None:
    """The registered @champion of a pair (version, run id, decision tags), or None."""
    from dlops import tracking

    params, p = _context(root)
    params.pair(pair)
    tracking.configure(p.root, params.mlflow)
    return tracking.champion_info(pair, params.mlflow)


# ----------------------------------------------------------------------------------- human decisions
def promote(pair: str, version: str, override: bool, reason: str, root: Path | None = None) -> dict[str, Any]:
    """`dlops promote`: a person makes a version @champion (refused for a failed gate without override)."""
    from dlops import decisions, tracking

    params, p = _context(root)
    control = params.pair(pair).gates.control
    if control is not None:
        raise ConfigError(
            f"models.{pair}.gates.control: {pair} is a control built to fail gates.{control}; "
            "it is never promoted"
        )
    tracking.configure(p.root, params.mlflow)
    return decisions.promote(pair, version, params.mlflow, user=_user(), override=override, reason=reason)


def rollback(pair: str, reason: str, root: Path | None = None) -> dict[str, Any]:
    """`dlops rollback`: @champion back to @previous, recorded as a decision."""
    from dlops import decisions, tracking

    params, p = _context(root)
    params.pair(pair)
    tracking.configure(p.root, params.mlflow)
    return decisions.rollback(pair, params.mlflow, user=_user(), reason=reason)


def _user() -> str:
    import getpass
    import os

    return os.environ.get("DLOPS_USER") or getpass.getuser()


def leaderboard(log: bool = False, root: Path | None = None) -> list[dict[str, Any]]:
    """Every model's test metrics and registry standing; `log` records it as an MLflow run."""
    from dlops import leaderboard as board
    from dlops import tracking

    params, p = _context(root)
    tracking.configure(p.root, params.mlflow)
    table = board.rows(params, p.eval_dir, board.registry_state(list(params.models), params.mlflow))
    if log:
        board.log_leaderboard(table, board.markdown(table))
    return table


def lineage(uri: str, root: Path | None = None) -> dict[str, Any]:
    """`dlops lineage`: version -> run -> commit -> data version of a registered model."""
    from dlops import lineage as chain
    from dlops import tracking

    params, p = _context(root)
    tracking.configure(p.root, params.mlflow)
    return chain.lineage(uri, p.root)


def restore_data(uri: str, root: Path | None = None) -> Path:
    """`dlops lineage --restore`: the raw table a version was trained on, by its DVC md5."""
    from dlops import lineage as chain

    return chain.restore_data(lineage(uri, root), paths(root).root)
