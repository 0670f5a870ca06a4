"""An IMDB-sized corpus (50,000 reviews of ~10 sentences) as JSONL through ingest, validate and
preprocess, plus one epoch of the default RNN, in a temporary copy of the project: time and peak
memory per step. The reviews come from the built-in grammar (nothing is downloaded).
Run: .venv/bin/python benchmarks/text_50k.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from images_70k import REPO, _cores, step  # noqa: E402

N, SENTENCES = 50_000, 10


def write_corpus(root: Path) -> None:
    from dlops.kinds.text.reviews import generate_reviews
    from dlops.params import SyntheticReviewsSource

    pool = generate_reviews(SyntheticReviewsSource(source="synthetic-reviews", rows=N, seed=5))
    extra = generate_reviews(
        SyntheticReviewsSource(source="synthetic-reviews", rows=N * (SENTENCES - 1), seed=6)
    )
    (root / "data/external").mkdir(parents=True, exist_ok=True)
    with (root / "data/external/reviews.jsonl").open("w", encoding="utf-8") as out:
        for i, row in enumerate(pool.itertuples()):
            filler = " ".join(extra["text"].iloc[i * (SENTENCES - 1) : (i + 1) * (SENTENCES - 1)])
            out.write(json.dumps({"review": f"{filler} {row.text}", "sentiment": row.label}) + "\n")


def project(root: Path) -> None:
    for name in ("src", "pipelines", "expectations"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    task = params["tasks"]["text"]
    task["ingest"] = {
        "source": "text-table",
        "path": "data/external/reviews.jsonl",
        "text_column": "review",
        "label_column": "sentiment",
    }
    task["columns"] = {"positive_label": "pos", "sensitive": []}
    task["validate"].update(suite="expectations/reviews.json", draft_if_missing=True)
    task["preprocess"]["tokenizer"].update(max_length=256, max_vocab=20000)
    params["tasks"] = {"text": task}
    params["retrain"]["batches"] = {}  # it may name only tasks that exist
    rnn = params["models"]["text-rnn"]
    rnn["train"].update(epochs=1)
    rnn["gates"].update(max_demographic_parity_difference=None, max_equalized_odds_difference=None)
    params["models"] = {"text-rnn": rnn}
    params["pretraining"] = {}  # its study names models left out here
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="dlops-50k-"))
    try:
        project(root)
        write_corpus(root)
        size_mb = round((root / "data/external/reviews.jsonl").stat().st_size / 2**20)
        results = {name: step(root, *cmd) for name, cmd in [
            ("ingest", ("ingest", "text")),
            ("validate", ("validate", "text")),
            ("preprocess", ("preprocess", "text")),
            ("train rnn, 1 epoch", ("train", "text-rnn")),
        ]}  # fmt: skip
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{_cores()} cores, CPU only",
            "reviews": N,
            "jsonl_mib": size_mb,
            "results": results,
        }
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
