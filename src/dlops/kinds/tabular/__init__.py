"""Tabular tasks: a table of numeric and categorical columns with a target (CSV/Parquet or the
built-in `synthetic-income` generator), a fitted scaler/one-hot transform, Gaussian noise and mixup
on training batches, permutation importance and partial dependence, PSI/KS drift per column.

Modules: sources and synthetic (ingest), suite (validate), transform (split files, transform.json and
batch augmentation), interpret (evaluate), drift."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dlops.kinds.base import NEW_TASK_SPLIT, Kind, NewTask, ServingInputs

log = logging.getLogger(__name__)

FEATURES = "__features"  # a hash of a row's declared feature columns: identical rows share one split


class Tabular(Kind):
    name = "tabular"
    new_task = NewTask(
        models=("tabular-mlp",),
        sections={
            "validate": {"min_rows": 500, "max_null_fraction": 0.1, "min_class_fraction": 0.05,
                         "max_duplicate_fraction": 0.01},
            "preprocess": {"split": NEW_TASK_SPLIT, "scaling": "standard", "max_categories": 50},
            "augment": {"noise_std": 0.0, "mixup_alpha": 0.0},
        },
        built_in_models={"tabular-mlp": {"family": "mlp",
                                         "model": {"hidden_sizes": [128, 64], "dropout": 0.1}}},
        primary_metric="balanced_accuracy",
        duplicate_key="__record",
    )  # fmt: skip

    def load(self, task_cfg: Any, root: Path) -> Any:
        from dlops.kinds.tabular.sources import load_raw

        return load_raw(task_cfg, root)

    def draft_suite(self, task: str, task_cfg: Any, frame: Any) -> dict[str, Any]:
        from dlops.kinds.tabular.suite import draft_suite

        return draft_suite(frame, task_cfg.columns, task_cfg.validate_, name=task)

    def validate(
        self, raw: Any, suite: dict[str, Any], task_cfg: Any, docs_dir: Path | None
    ) -> dict[str, Any]:
        """The suite and the PII screen of every string column (pseudonymised identifiers aside); the
        summary records what ingest did to the identifier columns under `identifiers`."""
        from dlops.data.validation import masked, with_warnings
        from dlops.kinds.tabular.suite import validate_table
        from dlops.privacy.pii_summary import string_columns, with_pii_screen
        from dlops.privacy.pseudonyms import handling

        columns, cfg = task_cfg.columns, task_cfg.validate_
        summary = validate_table(raw, suite, columns, cfg, docs_dir)
        summary = with_pii_screen(summary, raw, string_columns(raw, skip=columns.identifiers), cfg.pii)
        if columns.identifiers:
            summary["identifiers"] = handling(columns.identifiers)
        constant = [
            f"column {col!r} holds one value ({masked(repr(raw[col].dropna().iloc[0]))}) in every row: it "
            "carries no information; check the feed, or list it under columns.ignored"
            for col in [*columns.numeric, *columns.categorical]
            if col in raw.columns and len(raw) > 1 and raw[col].dropna().map(repr).nunique() == 1
        ]  # (repr: a cell may be a list, which has no hash)
        return with_warnings(summary, constant)

    def preprocess(
        self, task: str, task_cfg: Any, raw: Any, p: Any, blocks: list[tuple[str, int]]
    ) -> dict[str, int]:
        """Split (seeded, stratified; feature-identical rows together; a given split kept), fit the
        transform on train only; write splits, transform.json (with the split's provenance)."""
        from dlops.data.splitting import split_by_key, split_provenance
        from dlops.files import read_json, write_json, write_parquet
        from dlops.kinds.tabular.sources import feature_key, hidden_columns
        from dlops.kinds.tabular.transform import TabularTransform, make_split_frame

        split = task_cfg.preprocess.split
        raw = raw.assign(**{FEATURES: feature_key(raw, task_cfg.columns)})
        splits = split_by_key(raw, task_cfg.columns, split, blocks, key=FEATURES)
        provenance = split_provenance(raw, splits, split, key=FEATURES)
        hidden = [FEATURES, *hidden_columns(raw, split, task_cfg.columns)]
        splits = {name: frame.drop(columns=hidden) for name, frame in splits.items()}
        transform = TabularTransform.fit(splits["train"], task_cfg.columns, task_cfg.preprocess)
        p.processed(task).mkdir(parents=True, exist_ok=True)
        for name, frame in splits.items():
            write_parquet(make_split_frame(transform, frame), p.split(task, name))
        # Raw test rows let a champion trained on another transform be re-scored on today's test split.
        write_parquet(splits["test"].reset_index(drop=True), p.raw_split(task, "test"))
        transform.to_json(p.transform(task))
        write_json(p.transform(task), {**read_json(p.transform(task)), "split": provenance})
        sizes = {name: len(frame) for name, frame in splits.items()}
        log.info("preprocess %s: %s, %d features", task, sizes, len(transform.feature_names))
        return sizes

    def split_file(self, p: Any, task: str, split: str) -> Path:
        return Path(p.split(task, split))

    def load_split(self, p: Any, task: str, split: str) -> tuple[Any, Any, dict[str, Any]]:
        import numpy as np
        import pandas as pd

        from dlops.kinds.tabular.transform import GROUP_PREFIX, LABEL

        frame = pd.read_parquet(p.split(task, split))
        groups = {
            c[len(GROUP_PREFIX) :]: frame[c].to_numpy() for c in frame.columns if c.startswith(GROUP_PREFIX)
        }
        features = [c for c in frame.columns if c != LABEL and not c.startswith(GROUP_PREFIX)]
        x = frame[features].to_numpy(dtype=np.float32)
        y = frame[LABEL].to_numpy(dtype=np.int64)
        return x, y, groups

    def classes_and_shape(self, transform: dict[str, Any]) -> tuple[list[str], tuple[int, ...]]:
        return [str(c) for c in transform["classes"]], (len(transform["feature_names"]),)

    def batch_augment(self, task_cfg: Any, num_classes: int) -> Any:
        cfg = task_cfg.augment
        if cfg.noise_std == 0 and cfg.mixup_alpha == 0:
            return None
        from dlops.kinds.tabular.transform import augment_batch

        return lambda x, y, gen: augment_batch(x, y, num_classes, cfg, gen)

    def evaluate_classifier(
        self, model: Any, p: Any, entry: Any, classes: list[str], test: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        """Permutation importance, proxies and partial dependence on the raw test rows."""
        import pandas as pd

        from dlops.kinds.tabular.interpret import interpret_tabular
        from dlops.kinds.tabular.transform import TabularTransform
        from dlops.training.loop import predict_proba

        transform = TabularTransform.from_json(p.transform(entry.task))
        raw_test = pd.read_parquet(p.raw_split(entry.task, "test"))[transform.input_columns]
        return interpret_tabular(
            lambda frame: predict_proba(model, transform.transform(frame)),
            raw_test,
            test["y"],
            test["groups"],
            out,
            entry.train.seed,
        )

    def serving_inputs(self, p: Any, entry: Any, task_cfg: Any, pair: str) -> ServingInputs:
        import pandas as pd

        raw_test = pd.read_parquet(p.raw_split(entry.task, "test"))
        target = task_cfg.columns.target
        inputs = raw_test.drop(columns=[target])
        return ServingInputs(
            inputs=inputs,
            truth=raw_test[target],
            by_index=False,
            example=inputs.head(20),
            pyfunc="tabular",
            artifacts={"transform": p.transform(entry.task)},
            tabular_signature=True,
        )

    def drift(
        self, task_cfg: Any, reference: Any, current: Any, p: Any, task: str, threshold: float
    ) -> dict[str, Any]:
        from dlops.kinds.tabular.drift import table_drift

        cols = task_cfg.columns
        categorical = [*cols.categorical, *[s for s in cols.sensitive if s not in cols.categorical]]
        return table_drift(reference, current, cols.numeric, categorical, cols.target, threshold)

    def batch_spec_for_path(self, path: str) -> dict[str, Any]:
        return {"source": "table", "path": path}

    def drift_summary(self, report: dict[str, Any]) -> str:
        from dlops.kinds.tabular.drift import summary

        return summary(report)


KIND = Tabular()
