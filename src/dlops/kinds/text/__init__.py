"""Text tasks: labelled texts (CSV/TSV/JSONL, a folder per class, or the built-in review grammar), a
word tokenizer fitted on the training split, token dropout and local swaps on training batches, a
behavioural challenge set and token attributions, length and out-of-vocabulary drift.

Modules: sources and reviews (ingest; reviews also gives the challenge set), suite (validate),
tokenizer, augment, evaluate (challenge set, token attributions), drift."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

from dlops.kinds.base import NEW_TASK_SPLIT, ArrayKind, NewTask, ServingInputs

log = logging.getLogger(__name__)


class Text(ArrayKind):
    name = "text"
    new_task = NewTask(
        models=("text-rnn", "text-transformer", "text-mlp"),
        sections={
            "validate": {"min_rows": 100, "min_chars": 1, "max_chars": 100_000, "min_class_fraction": 0.05,
                         "max_duplicate_fraction": 0.01},
            "preprocess": {"split": NEW_TASK_SPLIT,
                           "tokenizer": {"min_freq": 2, "max_vocab": 20_000, "max_length": 64}},
            "augment": {"token_dropout": 0.0},
        },
        built_in_models={"text-rnn": {"family": "rnn",
                                      "model": {"cell": "gru", "embedding_dim": 32, "hidden_size": 32}}},
        primary_metric="accuracy",
        duplicate_key="text",
    )  # fmt: skip

    def observed_limits(self, frame: Any) -> dict[str, tuple[Any, str]]:
        return {"max_chars": (int(frame["text"].str.len().max()), "its longest text has {} characters")}

    def load(self, task_cfg: Any, root: Path) -> Any:
        from dlops.kinds.text.sources import load_texts

        return load_texts(task_cfg, root)

    def draft_suite(self, task: str, task_cfg: Any, frame: Any) -> dict[str, Any]:
        from dlops.kinds.text.suite import draft_text_suite

        return draft_text_suite(frame, task_cfg.columns, task_cfg.validate_, task)

    def validate(
        self, raw: Any, suite: dict[str, Any], task_cfg: Any, docs_dir: Path | None
    ) -> dict[str, Any]:
        """The suite and the PII screen on the text table; failures name the source lines (file:line)."""
        from dlops.data.validation import name_files, with_warnings
        from dlops.kinds.text.suite import validate_table
        from dlops.privacy.pii_summary import with_pii_screen

        summary = validate_table(raw, suite, task_cfg.columns, task_cfg.validate_, docs_dir)
        summary = with_pii_screen(summary, raw, ["text"], task_cfg.validate_.pii)
        summary = name_files(summary, raw, noun="lines") if "source" in raw.columns else summary
        nul = raw["text"].astype(str).str.contains("\x00", regex=False)
        warnings = []
        if nul.any():
            where = ", ".join(raw.loc[nul, "source"].astype(str).head(3)) if "source" in raw.columns else ""
            example = f", e.g. {where}" if where else ""
            warnings.append(
                f"text: {int(nul.sum())} row(s) hold NUL bytes (\\x00){example}: a binary or mis-encoded "
                "file? the tokenizer reads them as part of a word"
            )
        return with_warnings(summary, warnings)

    def preprocess(
        self, task: str, task_cfg: Any, raw: Any, p: Any, blocks: list[tuple[str, int]]
    ) -> dict[str, int]:
        """Split distinct texts (copies stay together), fit the tokenizer on train only, write token ids."""
        from dlops.data.arrays import save_split
        from dlops.data.splitting import split_images, split_provenance
        from dlops.files import write_json, write_parquet
        from dlops.kinds.text.tokenizer import WordTokenizer

        raw = raw.assign(sha1=[hashlib.sha1(t.encode()).hexdigest() for t in raw["text"].astype(str)])
        classes = sorted(str(v) for v in raw["label"].unique())
        raw = raw.assign(label_name=raw["label"].astype(str))
        raw["label"] = raw["label_name"].map({c: i for i, c in enumerate(classes)})
        splits = split_images(raw, task_cfg.columns, task_cfg.preprocess.split, blocks)
        provenance = split_provenance(raw, splits, task_cfg.preprocess.split, key="sha1")
        out = p.processed(task)
        if out.exists():
            shutil.rmtree(out)
        tokenizer = WordTokenizer.fit(splits["train"]["text"].tolist(), task_cfg.preprocess.tokenizer)
        for name, frame in splits.items():
            ids, _ = tokenizer.encode(frame["text"].tolist())  # (N, L) int64, 0 = padding
            save_split(p.image_split(task, name), frame, ids, task_cfg.columns.sensitive)
        tokenizer.to_json(out / "tokenizer.json")
        test_rows = splits["test"][["text", "label_name", *task_cfg.columns.sensitive]]
        write_parquet(
            test_rows.rename(columns={"label_name": "label"}).reset_index(drop=True),
            p.raw_split(task, "test"),
        )
        transform: dict[str, Any] = {
            "kind": "text",
            "classes": classes,
            "input_shape": [tokenizer.max_length],
        }
        transform |= {"vocab_size": tokenizer.vocab_size, "split": provenance}
        if tokenizer.subword_buckets:  # every word the splits spell out, in id order: the model's table
            transform["subwords"] = tokenizer.subwords()
        write_json(p.transform(task), transform)
        sizes = {name: len(frame) for name, frame in splits.items()}
        log.info("preprocess %s: %s texts, vocabulary %d", task, sizes, tokenizer.vocab_size)
        return sizes

    def model_config(self, transform: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        subwords = {"subwords": transform["subwords"]} if "subwords" in transform else {}
        return {**model, "vocab_size": int(transform["vocab_size"]), **subwords}

    def batch_augment(self, task_cfg: Any, num_classes: int) -> Any:
        from dlops.kinds.text.augment import make_text_augment

        return make_text_augment(task_cfg.augment)

    def evaluate_classifier(
        self, model: Any, p: Any, entry: Any, classes: list[str], test: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        """Behavioural challenge set (negation, contrast, filler) and token attributions for a few texts."""
        import pandas as pd

        from dlops.files import write_json
        from dlops.kinds.text import evaluate as text
        from dlops.kinds.text.tokenizer import WordTokenizer, attach

        write_json(out / "interpretation.json", {})
        tokenizer = WordTokenizer.from_json(p.processed(entry.task) / "tokenizer.json")
        attach(model, tokenizer)  # the challenge set's words the training texts never had
        raw_test = pd.read_parquet(p.raw_split(entry.task, "test"))
        n = entry.evaluate.attribution_images
        if n:
            texts = raw_test["text"].astype(str).tolist()[:n]
            targets = [int(v) for v in test["y"][:n]]
            path = out / "figures" / "token_attributions.svg"
            text.token_attributions(model, tokenizer, texts, targets, path, classes=classes)
        if not {"pos", "neg"} <= set(classes):
            log.info(
                "evaluate %s: labels %s are not pos/neg; the challenge set is skipped", entry.task, classes
            )
            return {}
        metrics, table = text.challenge_report(
            lambda texts: text.predict_texts(model, tokenizer, texts, classes), classes
        )
        table.to_csv(out / "figures" / "challenge.csv", index=False, lineterminator="\n")
        return metrics

    def serving_inputs(self, p: Any, entry: Any, task_cfg: Any, pair: str) -> ServingInputs:
        import pandas as pd

        raw_test = pd.read_parquet(p.raw_split(entry.task, "test"))
        inputs = raw_test.drop(columns=["label"])
        return ServingInputs(
            inputs=inputs,
            truth=raw_test["label"],
            by_index=False,
            example=inputs[["text"]].head(20),
            pyfunc="text-classifier",
            artifacts={"tokenizer": p.processed(entry.task) / "tokenizer.json"},
        )

    def drift(
        self, task_cfg: Any, reference: Any, current: Any, p: Any, task: str, threshold: float
    ) -> dict[str, Any]:
        from dlops.kinds.text.drift import text_drift
        from dlops.kinds.text.tokenizer import WordTokenizer
        from dlops.monitoring.drift import with_label_drift

        path = p.processed(task) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no training vocabulary for the OOV rate; run `dvc repro` first")
        tokenizer = WordTokenizer.from_json(path)  # the words, split and cased as the model reads them
        vocabulary = set(tokenizer.vocab[2:])  # without padding and the unknown token
        ref_texts, cur_texts = reference["text"].astype(str), current["text"].astype(str)
        report = text_drift(ref_texts, cur_texts, vocabulary, tokenizer.tokenize, threshold)
        return with_label_drift(report, reference, current, threshold)

    def drift_summary(self, report: dict[str, Any]) -> str:
        from dlops.kinds.text.drift import summary

        return summary(report)


KIND = Text()
