"""Fair thresholds' coin per row under the last-digit noise of another CPU: keyed by the row's score (as
until 2026-12-07) or by the row's model input (now, `dlops.mitigation.row_draws`).

A trained threshold-optimised model (default `tabular-mlp-thresholds`) in a project where it was trained
(`make run` / `dvc repro` done) is scored twice in subprocesses: as this CPU runs it, and with MKL and
oneDNN held to AVX2 (`MKL_CBWR`, `ONEDNN_MAX_CPU_ISA`, `ATEN_CPU_CAPABILITY`), a narrower code path that
stands in for another CPU. Then, for that second scoring and for the first one's scores plus seeded
noise of 1e-6, 1e-5 and 1e-4: thresholds fitted on val as evaluate fits them, decisions on test, and
against the unperturbed run: rows whose P(positive) moved, decisions that differ, and the DP / EO gaps
the fairness gates read, for each keying. Takes under a minute.

Run: .venv/bin/python benchmarks/fair_draws.py --root PROJECT [--pair tabular-mlp-thresholds]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import append_results, parser, print_table  # noqa: E402

NARROW = {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
NOISE = (1e-6, 1e-5, 1e-4)


def write_scores(root: Path, pair: str, out: Path) -> None:
    """The pair's val and test probabilities, inputs, labels and groups, loaded as `dlops evaluate` does."""
    from dlops.pairs.setup import model_split
    from dlops.stages import _context, kind_of
    from dlops.training.checkpoint import load_model
    from dlops.training.loop import predict_proba

    params, p = _context(root)
    entry = params.pair(pair)
    kind = kind_of(params.task(entry.task))
    model, _ = load_model(p.checkpoint(pair))
    arrays: dict[str, Any] = {}
    for split in ("val", "test"):
        x, y, groups = model_split(p, kind, entry, split)
        arrays[f"{split}/score"] = predict_proba(model, x)[:, 1]
        arrays[f"{split}/x"], arrays[f"{split}/y"] = np.array(x), y
        arrays.update({f"{split}/group/{a}": np.asarray(g, dtype=str) for a, g in groups.items()})
    np.savez(out, **arrays)


def score_draws(scores: np.ndarray) -> np.ndarray:
    """The retired keying: a hash of each row's score rounded to 6 decimals."""
    keys = (f"{v:.6f}".encode() for v in np.asarray(scores, dtype=np.float64))
    return np.array([int.from_bytes(hashlib.sha256(k).digest()[:8], "big") / 2**64 for k in keys])


def decide(data: dict[str, Any], cfg: Any, val: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Thresholds fitted on `val` scores, then each keying's decisions and gaps on `test` scores."""
    from dlops.evaluation.fairness import fairness_report
    from dlops.mitigation import fit_thresholds, joint_groups, row_draws

    def groups(split: str) -> dict[str, np.ndarray]:
        prefix = f"{split}/group/"
        return {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}

    fair = fit_thresholds(
        val, data["val/y"], joint_groups(groups("val"), cfg.attributes),
        constraint=cfg.constraint, objective=cfg.objective, attributes=cfg.attributes, tol=cfg.tol,
    )  # fmt: skip
    probability = fair.positive_probability(test, joint_groups(groups("test"), cfg.attributes))
    out: dict[str, Any] = {"probability": probability}
    for keying, draws in (("score", score_draws(test)), ("input", row_draws(data["test/x"]))):
        decided = (draws < probability).astype(np.int64)
        flat, _ = fairness_report(data["test/y"], decided, groups("test"), num_classes=2)
        out[keying] = (
            decided,
            flat["fairness/max/demographic_parity_difference"],
            flat["fairness/max/equalized_odds_difference"],
        )
    return out


def main() -> None:
    ap = parser(__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="a project where the pair is trained")
    ap.add_argument("--pair", default="tabular-mlp-thresholds")
    ap.add_argument("--scores", type=Path, help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    if args.scores:  # child mode: one scoring under this process's environment
        write_scores(args.root.resolve(), args.pair, args.scores)
        return

    from dlops.stages import _context

    cfg = _context(args.root.resolve())[0].pair(args.pair).evaluate.postprocess
    if cfg is None:
        sys.exit(f"{args.pair}: evaluate.postprocess is not set; this compares fair thresholds' draws")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, env in (("this CPU", {}), ("AVX2 only", NARROW)):
            out = Path(tmp) / f"{len(runs)}.npz"
            command = [sys.executable, __file__, "--root", str(args.root), "--pair", args.pair]
            subprocess.run([*command, "--scores", str(out)], check=True, env={**os.environ, **env})
            runs[name] = dict(np.load(out))
    base = runs["this CPU"]
    rng = np.random.default_rng(0)
    cases = {"AVX2 only (same model)": (runs["AVX2 only"]["val/score"], runs["AVX2 only"]["test/score"])}
    for scale in NOISE:
        noisy = [np.clip(base[f"{s}/score"] + rng.normal(0, scale, len(base[f"{s}/score"])), 0, 1)
                 for s in ("val", "test")]  # fmt: skip
        cases[f"scores + N(0, {scale:g})"] = (noisy[0], noisy[1])
    reference = decide(base, cfg, base["val/score"], base["test/score"])
    rows = [row("as scored here", 0.0, reference, reference)]
    for name, (val, test) in cases.items():
        moved = float(np.abs(test - base["test/score"]).max())
        rows.append(row(name, moved, decide(base, cfg, val, test), reference))
    title = f"Fair thresholds' draws under score noise: {args.pair} (CPU)"
    print_table(title, rows)
    notes = (
        f"`benchmarks/fair_draws.py`: {len(base['test/y'])} test rows of {args.pair}; thresholds "
        f"({cfg.constraint}) refitted on val for each case. 'P moved': rows whose probability of a "
        "positive decision changed (a score crossing a threshold); 'differ': decisions unlike the "
        "unperturbed run's with the same keying; DP / EO: the gaps the fairness gates read (largest "
        "over the sensitive attributes)."
    )
    append_results(title, rows, notes, args.results)


def row(name: str, moved: float, case: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """One case against the unperturbed run: scores moved, P(positive) moved, and per keying the
    decisions that differ and the two gaps."""
    out: dict[str, Any] = {
        "case": name,
        "max score change": f"{moved:.1e}",
        "P moved": int((case["probability"] != reference["probability"]).sum()),
    }
    for keying in ("score", "input"):
        decided, dp, eo = case[keying]
        out[f"{keying} key: differ"] = int((decided != reference[keying][0]).sum())
        out[f"{keying} key: DP"] = round(float(dp), 4)
        out[f"{keying} key: EO"] = round(float(eo), 4)
    return out


if __name__ == "__main__":
    main()
