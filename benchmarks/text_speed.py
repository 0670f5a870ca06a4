"""Seconds per training epoch of the default text Transformer and RNN on long reviews (issue 20: "141 s
per epoch on 17,500 reviews"): 17,500 training and 3,750 validation reviews of 1 to 50 sentences from the
built-in grammar (lengths spread like a review site's: median ~200 tokens, ~35% over the 256-token cut),
tokenized at max_length 256 with a 20,000-word vocabulary, one epoch of params.yaml's model and
train settings through the project's own loop (training pass + its train/val evaluation).

It measures whatever `dlops` is importable, so the same script times an older checkout:
    PYTHONPATH=<old checkout>/src .venv/bin/python benchmarks/text_speed.py
Run: .venv/bin/python benchmarks/text_speed.py [--models text-transformer,text-rnn] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from images_70k import REPO, _cores  # noqa: E402

TRAIN, VAL, MAX_LENGTH = 17_500, 3_750, 256


def corpus(seed: int = 5) -> tuple[list[str], np.ndarray]:
    from dlops.kinds.text.reviews import generate_reviews
    from dlops.params import SyntheticReviewsSource

    n = TRAIN + VAL
    base = generate_reviews(SyntheticReviewsSource(source="synthetic-reviews", rows=n, seed=seed))
    extra = generate_reviews(SyntheticReviewsSource(source="synthetic-reviews", rows=20 * n, seed=seed + 1))
    rng = random.Random(seed)
    filler, texts = extra["text"].tolist(), []
    for row in base.itertuples():
        count = min(49, int(rng.lognormvariate(2.77, 0.6)))  # median 15 extra sentences, a tail to 49
        texts.append(" ".join([*rng.sample(filler, count), row.text]))
    return texts, (base["label"] == "pos").to_numpy().astype(np.int64)


def one_epoch(name: str, ids: np.ndarray, y: np.ndarray, vocab: int, bucketing: bool | None) -> dict:
    from dlops.models.registry import build_model
    from dlops.params import TrainConfig
    from dlops.training.loop import train

    entry = yaml.safe_load((REPO / "params.yaml").read_text())["models"][name]
    config = {**entry["model"], "vocab_size": vocab}
    if entry["family"] == "transformer":
        config["max_length"] = MAX_LENGTH
    torch.manual_seed(0)
    model = build_model(entry["family"], input_shape=(MAX_LENGTH,), num_classes=2, config=config)
    settings = {**entry["train"], "epochs": 1, "augment": False}
    if bucketing is not None:
        settings["length_bucketing"] = bucketing
    cfg = TrainConfig(**settings)
    data = {"train": (ids[:TRAIN], y[:TRAIN]), "val": (ids[TRAIN:], y[TRAIN:])}
    started = time.perf_counter()
    result = train(model, data, cfg)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "val_accuracy": result.history[-1]["val/accuracy"],
    }


def main() -> None:
    from dlops.kinds.text.tokenizer import WordTokenizer
    from dlops.params import TrainConfig
    from dlops.params.tasks_text import TokenizerConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="text-transformer,text-rnn")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts, y = corpus()
    tokenizer = WordTokenizer.fit(texts[:TRAIN], TokenizerConfig(max_length=MAX_LENGTH, max_vocab=20_000))
    ids, lengths = tokenizer.encode(texts)
    has_bucketing = "length_bucketing" in TrainConfig.model_fields
    rows: dict[str, dict] = {}
    for name in args.models.split(","):
        for bucketing in (True, False) if has_bucketing else (None,):
            label = {True: "length-bucketed", False: "shuffled", None: "before length bucketing"}[bucketing]
            rows.setdefault(name, {})[label] = one_epoch(name, ids, y, tokenizer.vocab_size, bucketing)
            print(json.dumps({name: {label: rows[name][label]}}), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{_cores()} cores, CPU only, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "code": str(Path(sys.modules["dlops"].__file__ or "").parent),
        "reviews": {"train": TRAIN, "val": VAL, "max_length": MAX_LENGTH},
        "tokens": {
            "median": int(np.median(lengths)),
            "mean": round(float(lengths.mean()), 1),
            "share_truncated": round(float((lengths >= MAX_LENGTH).mean()), 3),
        },
        "epoch": rows,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
