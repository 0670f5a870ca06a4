"""An IMDB-sized corpus (50,000 reviews of ~10 sentences) as JSONL through ingest, validate and
preprocess, plus one epoch of the default RNN, in a temporary copy of the project: time and peak
memory per step. The reviews come from the built-in grammar (nothing is downloaded).

`--accuracy` instead trains the three text families to the end with their shipped settings (early
stopping included) on `--rows` reviews, `max_length` 256 cut `head_tail` (the verdict sentence is the
last), and reports each one's test accuracy, overfit gap and training time: do the sequence models at
least match bag-of-words on long texts?
Run: .venv/bin/python benchmarks/text_50k.py [--accuracy [--rows 20000]]
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


TEXT_MODELS = ["text-mlp", "text-rnn", "text-transformer"]


def write_corpus(root: Path, rows: int = N) -> None:
    from dlops.kinds.text.reviews import generate_reviews
    from dlops.params import SyntheticReviewsSource

    pool = generate_reviews(SyntheticReviewsSource(source="synthetic-reviews", rows=rows, seed=5))
    extra = generate_reviews(
        SyntheticReviewsSource(source="synthetic-reviews", rows=rows * (SENTENCES - 1), seed=6)
    )
    (root / "data/external").mkdir(parents=True, exist_ok=True)
    with (root / "data/external/reviews.jsonl").open("w", encoding="utf-8") as out:
        for i, row in enumerate(pool.itertuples()):
            filler = " ".join(extra["text"].iloc[i * (SENTENCES - 1) : (i + 1) * (SENTENCES - 1)])
            out.write(json.dumps({"review": f"{filler} {row.text}", "sentiment": row.label}) + "\n")


def project(root: Path, accuracy: bool = False) -> None:
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
    if accuracy:
        task["preprocess"]["tokenizer"]["truncate"] = "head_tail"
    params["tasks"] = {"text": task}
    params["retrain"]["batches"] = {}  # it may name only tasks that exist
    models = {name: params["models"][name] for name in (TEXT_MODELS if accuracy else ["text-rnn"])}
    for entry in models.values():
        entry["search"] = None
        entry["gates"].update(max_demographic_parity_difference=None, max_equalized_odds_difference=None)
        if "max_length" in entry["model"]:
            entry["model"]["max_length"] = 256
    if not accuracy:
        models["text-rnn"]["train"].update(epochs=1)
    params["models"] = models
    params["pretraining"] = {}  # its study names models left out here
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def accuracy(rows: int) -> dict:
    """Each text family trained to the end on `rows` long reviews: test accuracy, gaps, seconds."""
    root = Path(tempfile.mkdtemp(prefix="dlops-long-"))
    try:
        project(root, accuracy=True)
        write_corpus(root, rows)
        for name in ("ingest", "validate", "preprocess"):
            step(root, name, "text")
        split = json.loads((root / "data/processed/text/transform.json").read_text())["split"]["sizes"]
        found = {}
        for model in TEXT_MODELS:
            trained = step(root, "train", model)
            step(root, "evaluate", model)
            metrics = json.loads((root / f"reports/evaluate/{model}/metrics.json").read_text())
            found[model] = {
                "test_accuracy": round(metrics["test/accuracy"], 4),
                "overfit_gap": metrics.get("overfit/primary_gap"),
                "diagnosis": metrics.get("overfit/diagnosis"),
                "best_epoch": metrics.get("overfit/best_epoch"),
                "epochs_run": metrics.get("overfit/epochs_run"),
                "train_seconds": trained["seconds"],
            }
            print(json.dumps({model: found[model]}), flush=True)
        return {"date": time.strftime("%Y-%m-%d"), "machine": f"{_cores()} cores, CPU only", "reviews": rows,
                "split": split, "models": found}  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--accuracy", action="store_true", help="train the three text families to the end")
    parser.add_argument("--rows", type=int, default=20_000, help="with --accuracy: how many reviews")
    args = parser.parse_args()
    if args.accuracy:
        print(json.dumps(accuracy(args.rows), indent=2))
        return
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
