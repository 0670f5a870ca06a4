"""GLUE SST-2 (../shared/data/sst2: 67,349 training phrases, 872 dev sentences) by params alone: train.tsv
is the source, dev.tsv its `test:` sub-source (the official figure), val carved from train. Runs ingest,
validate, preprocess, then train + evaluate for each text family, in a temporary copy of the project,
and prints test (= dev) accuracy, the overfit gap, best epoch and seconds per model as JSON.

Run: .venv/bin/python benchmarks/sst2.py [--variant NAME ...] [--models text-rnn,text-mlp] [--pretraining]
Variants (see VARIANTS) change params only; `defaults` is params.yaml's text models as shipped.
--pretraining also runs params.yaml's masked-token studies (text-transformer at 10% and all labels) and
a variant's added `studies` (rnn-masked-tokens: the bi-GRU at all labels) on SST-2: the model's encoder
pretrained on the training phrases, labels unused, vs scratch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from images_70k import REPO, _cores, step  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "sst2"
MODELS = ["text-mlp", "text-rnn", "text-transformer"]

# Params-only variants: {model: {section: {key: value}}}, "*" for every model, "tokenizer", "augment"
# and "split" (preprocess.split's fractions) for the task, "pretraining" for every text study (with
# --pretraining), "studies" for studies added to params.yaml's (name: settings over the all-labels study's).
PLAIN: dict[str, Any] = {"augment": {"token_dropout": 0.0}, "*": {"train": {"length_bucketing": False}}}
VAL5 = {"train": 0.80, "val": 0.05, "test": 0.15}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "subwords": {"tokenizer": {"subword_buckets": 50000}},  # fastText's n-grams for unknown words
    # without the training-batch changes the probe does not make (token dropout, length bucketing)
    "subwords-no-token-dropout": {"tokenizer": {"subword_buckets": 50000}, "augment": {"token_dropout": 0.0}},
    "no-token-dropout": {"augment": {"token_dropout": 0.0}},
    "subwords-no-bucketing": {
        "tokenizer": {"subword_buckets": 50000},
        "*": {"train": {"length_bucketing": False}},
    },
    "no-bucketing": {"*": {"train": {"length_bucketing": False}}},
    "subwords-plain": {"tokenizer": {"subword_buckets": 50000}, **PLAIN},
    "plain": PLAIN,
    # val carved as 0.05 / 0.85 = 5.9% of train.tsv instead of 0.15 / 0.85 = 17.6%: more phrases to learn
    "val5": {"split": VAL5},
    "subwords-val5": {"split": VAL5, "tokenizer": {"subword_buckets": 50000}},
    # the Transformer with one encoder layer instead of two; val 0.02 / 0.85 = 2.4% of train.tsv
    "subwords-val5-1layer": {
        "split": VAL5,
        "tokenizer": {"subword_buckets": 50000},
        "text-transformer": {"model": {"num_layers": 1}},
    },
    "subwords-val2": {
        "split": {"train": 0.83, "val": 0.02, "test": 0.15},
        "tokenizer": {"subword_buckets": 50000},
    },
    "subwords-plain-val5": {"split": VAL5, "tokenizer": {"subword_buckets": 50000}, **PLAIN},
    "monitor-accuracy": {"*": {"train": {"monitor": "val_accuracy"}}},
    "wider": {
        "tokenizer": {"max_vocab": 20000, "min_freq": 1},
        "*": {"train": {"monitor": "val_accuracy", "weight_decay": 0.01}},
        "text-rnn": {"model": {"embedding_dim": 128, "hidden_size": 128, "dropout": 0.5}},
        "text-transformer": {
            "model": {
                "d_model": 128,
                "num_heads": 4,
                "dim_feedforward": 256,
                "dropout": 0.3,
            }
        },
        "text-mlp": {"model": {"hidden_sizes": [256], "dropout": 0.5}},
    },
    "max-pool": {  # the Transformer's features: max over positions instead of the mean
        "text-transformer": {"model": {"pooling": "max"}, "train": {"monitor": "val_accuracy"}},
    },
    "alibi": {  # positions as ALiBi's distance bias: trained on short phrases, scored on long sentences
        "text-transformer": {
            "model": {"positions": "alibi"},
            "train": {"monitor": "val_accuracy", "epochs": 30},
        },
    },
    "alibi-max": {
        "text-transformer": {
            "model": {"positions": "alibi", "pooling": "max"},
            "train": {"monitor": "val_accuracy", "epochs": 30},
        },
    },
    "conv": {  # positions from a convolution over neighbouring tokens (wav2vec 2.0, CPVT)
        "text-transformer": {"model": {"positions": "conv"}},
    },
    "conv-max": {
        "text-transformer": {"model": {"positions": "conv", "pooling": "max"}},
    },
    "conv-max-vocab": {  # and every word of the training phrases (SST-2 has about 15,000)
        "tokenizer": {"max_vocab": 20000, "min_freq": 1},
        "text-transformer": {"model": {"positions": "conv", "pooling": "max"}},
    },
    "conv-max-dropout": {
        "text-transformer": {"model": {"positions": "conv", "pooling": "max", "dropout": 0.3}},
    },
    "conv-max-accuracy": {  # early stopping on val accuracy instead of val loss
        "text-transformer": {
            "model": {"positions": "conv", "pooling": "max"},
            "train": {"monitor": "val_accuracy"},
        },
    },
    **{f"seed-{s}": {"*": {"train": {"seed": s}}} for s in (1, 2, 3, 7)},  # another seed: the spread
    "rnn-max": {"text-rnn": {"model": {"pooling": "max"}}},  # the GRU's strongest step per feature
    "rnn-64": {"text-rnn": {"model": {"embedding_dim": 64, "hidden_size": 64, "dropout": 0.3}}},
    "rnn-vocab": {"tokenizer": {"max_vocab": 20000, "min_freq": 1}},  # every word SST-2's phrases use
    "rnn-emb128": {"text-rnn": {"model": {"embedding_dim": 128, "hidden_size": 64, "dropout": 0.3}}},
    "encoder-epochs-30": {"pretraining": {"encoder_epochs": 30}},  # masked tokens for 30 epochs, not 10
    "rnn-masked-tokens": {  # the bi-GRU's own embedding + encoder pretrained on the phrases, every label
        "studies": {"text-rnn-masked-tokens-all-labels": {"classifier": "text-rnn", "seeds": [0, 1, 2]}}
    },
    **{  # the GRU for 16 epochs instead of 8: at 8 its best epoch is the last on SST-2
        f"rnn-epochs-16-seed-{s}": {"text-rnn": {"train": {"epochs": 16, "seed": s}}} for s in (1, 7, 42)
    },
    **{
        f"rnn-max-seed-{s}": {"text-rnn": {"model": {"pooling": "max"}, "train": {"seed": s}}} for s in (1, 7)
    },
    **{f"transformer-seed-{s}": {"text-transformer": {"train": {"seed": s}}} for s in (1, 2, 3)},
    "transformer-lr": {"text-transformer": {"train": {"lr": 0.001, "epochs": 30, "patience": 5}}},
    "transformer-one-layer": {"text-transformer": {"model": {"num_layers": 1}}},
    "transformer-weight-decay": {"text-transformer": {"train": {"weight_decay": 0.01}}},
    "token-dropout": {"augment": {"token_dropout": 0.15}},  # words to <unk> in training batches
    "token-dropout-swap": {"augment": {"token_dropout": 0.1, "local_swap": 0.1}},
    "conv-max-64": {
        "text-transformer": {
            "model": {
                "positions": "conv",
                "pooling": "max",
                "d_model": 64,
                "num_heads": 4,
                "dim_feedforward": 128,
            }
        },
    },
    "max-pool-64": {
        "text-transformer": {
            "model": {
                "pooling": "max",
                "d_model": 64,
                "num_heads": 4,
                "dim_feedforward": 128,
                "dropout": 0.2,
            },  # fmt: skip
            "train": {"monitor": "val_accuracy"},
        },
    },
}


def project(
    root: Path,
    variant: dict[str, Any],
    models: list[str],
    studies: bool = False,
    seed: int | None = None,
) -> None:
    for name in ("src", "pipelines", "expectations"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data/external").mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        shutil.copy(DATA / name, root / "data/external" / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    task = params["tasks"]["text"]
    task["ingest"] = {
        "source": "text-table",
        "path": "data/external/train.tsv",
        "test": "data/external/dev.tsv",  # the official figure
        "text_column": "sentence",
        "label_column": "label",
    }
    task["columns"] = {"positive_label": "1", "sensitive": []}
    # SST-2 repeats short phrases ("the film", "good") across its 67k rows: copies share a split anyway
    task["validate"].update(
        suite="expectations/sst2.json", draft_if_missing=True, max_duplicate_fraction=0.05
    )
    task["preprocess"]["tokenizer"].update(max_length=64, **variant.get("tokenizer", {}))
    task["augment"].update(variant.get("augment", {}))  # the task's training-batch augmentation
    task["preprocess"]["split"].update(variant.get("split", {}))  # the fractions; dev.tsv stays the test
    params["tasks"] = {"text": task}
    params["retrain"]["batches"] = {}
    base = params["pretraining"]["text-transformer-masked-tokens-all-labels"]
    added = {name: {**base, **study} for name, study in variant.get("studies", {}).items()}
    params["pretraining"] = {
        name: {**study, **variant.get("pretraining", {})}  # e.g. more masked-token epochs
        for name, study in {**params["pretraining"], **added}.items()
        if studies and study["task"] == "text" and study["classifier"] in models
    }
    chosen = {}
    for name in models:
        entry = params["models"][name]
        entry["search"] = None
        entry["gates"].update(max_demographic_parity_difference=None, max_equalized_odds_difference=None)
        for section, values in {**variant.get("*", {})}.items():
            entry[section].update(values)
        for section, values in variant.get(name, {}).items():
            entry[section].update(values)
        if seed is not None:  # --seed: the same variant at another seed
            entry["train"]["seed"] = seed
        chosen[name] = entry
    params["models"] = chosen
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_variant(
    name: str,
    models: list[str],
    studies: bool = False,
    study: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"dlops-sst2-{name}-"))
    try:
        project(root, VARIANTS[name], models, studies, seed)
        steps = {s: step(root, s, "text") for s in ("ingest", "validate", "preprocess")}
        split = json.loads((root / "data/processed/text/transform.json").read_text())["split"]
        rows = {}
        for model in models if study is None else []:  # --study: that study alone
            trained = step(root, "train", model)
            step(root, "evaluate", model)
            metrics = json.loads((root / f"reports/evaluate/{model}/metrics.json").read_text())
            rows[model] = {
                "dev_accuracy": round(metrics["test/accuracy"], 4),
                "dev_n": metrics["test/n"],
                "overfit_gap_train_test": metrics.get("overfit/primary_gap_train_test"),
                "overfit_gap_gated": metrics.get("overfit/primary_gap"),  # train − val: dev is given
                "shift_val_dev": metrics.get("shift/primary_gap_val_test"),
                "diagnosis": metrics.get("overfit/diagnosis"),
                "best_epoch": metrics.get("overfit/best_epoch"),
                "epochs_run": metrics.get("overfit/epochs_run"),
                "train_seconds": trained["seconds"],
            }
            print(json.dumps({name: {model: rows[model]}}), flush=True)
        pretraining = {}
        for study_name in yaml.safe_load((root / "params.yaml").read_text())["pretraining"]:
            if study not in (None, study_name):
                continue
            started = time.perf_counter()
            step(root, "pretraining", study_name)
            report = json.loads((root / f"reports/pretraining/{study_name}.json").read_text())
            pretraining[study_name] = {
                "label_fraction": report["label_fraction"],
                "labelled_train_rows": report["labelled_rows"]["train"],
                "scratch": round(report["scratch"]["accuracy"], 4),
                "pretrained": round(report["pretrained"]["accuracy"], 4),
                "gain": round(report["gain"]["accuracy"], 4),
                "wins": f"{report['wins']} of {len(report['seeds'])}",
                "masked_token_accuracy": round(report["encoder"]["val_masked_token_accuracy"], 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps({name: {study_name: pretraining[study_name]}}), flush=True)
        return {
            "steps": steps,
            "split": split["sizes"],
            "leakage": split["leakage"]["count"],
            "models": rows,
            "pretraining": pretraining,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--pretraining", action="store_true", help="also the masked-token studies")
    parser.add_argument("--study", help="with --pretraining: only this study, and no model training")
    parser.add_argument("--seed", type=int, help="every model's train.seed, over the variant's")
    args = parser.parse_args()
    models = args.models.split(",")
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{_cores()} cores, CPU only",
        "seed": args.seed,  # None: each model's own (params.yaml or the variant)
        "variants": {
            v: run_variant(v, models, args.pretraining, args.study, args.seed)
            for v in args.variant or ["defaults"]
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
