"""Over/underfitting diagnosis from the training history and the primary metric on each split.

`overfit/diagnosis` is one of, in order of precedence:
- "diverged" when a loss became NaN/inf (the run blew up);
- "underfitting" when the train primary metric itself is below `underfit_below`;
- "overfitting" when the gap the gate reads exceeds `gap_limit`: the larger of train − val and
  train − test, or train − val alone when the test split is given (below);
- "diverged" when, after the best epoch, the validation loss rose (above the best by more than
  `rise_tolerance`, relative) for `rise_epochs` consecutive epochs while the training loss kept falling.
  The checkpoint holds the best epoch's weights, so this warns about the run, not the kept model; it
  ranks below the gaps, which measure the kept model;
- "ok" otherwise.
The diagnosis is a string: DVC plots only numbers from metrics files, which is fine.

Which gap is overfitting: a model overfits when it scores better on its training rows than on unseen
rows *of the same distribution*. A test split cut from the same data by fractions is such rows. A
given (official) test split need not be: GLUE SST-2 trains on phrases and tests on whole sentences, so
its train − test gap holds the shift between the two as well. With a given test split the validation
rows (carved from train, or given) are the held-out rows of the training distribution, so the gate
reads train − val, and val − test is reported as `shift/primary_gap_val_test`: how much the official
test differs from what the model was trained on, which no regularisation fixes.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from dlops.evaluation.report import clean

log = logging.getLogger(__name__)


DEFAULT_GAP = 0.05  # the train/test gap called overfitting when a model's gates set none


def given_test_split(transform: dict[str, Any]) -> bool:
    """Whether transform.json's split provenance says the test rows were given (an official test file
    or a split column), not cut from the same data by fractions."""
    split = transform.get("split") or {}
    return split.get("how") == "given" and bool((split.get("given") or {}).get("test"))


def diagnose(
    history: dict[str, Any],
    split_metrics: dict[str, Any],
    primary: str,
    gap_limit: float,
    *,
    underfit_below: float = 0.6,
    rise_tolerance: float = 0.01,
    rise_epochs: int = 2,
    test_given: bool = False,
) -> dict[str, float | int | bool | str | None]:
    """Keys `overfit/{loss_gap_val_train, loss_gap_val_train_final, primary_gap_train_val,
    primary_gap_train_test, primary_gap, gap_basis, best_epoch, epochs_run, diverged, diagnosis}`, and
    `shift/primary_gap_val_test` when `test_given`. `primary_gap` is the gap `max_overfit_gap` gates:
    train − test, or train − val when the test split is given (see the module's docstring).

    `history` is history.json (`{"epochs": [{"epoch", "train/loss", "val/loss", ...}], "best_epoch"}`);
    `split_metrics` holds `train/<primary>`, `val/<primary>`, `test/<primary>` (a missing one gives a
    None gap). Loss gaps are val − train at the best epoch and at the final epoch.
    """
    rows = history.get("epochs") or []
    if not rows:
        raise ValueError("history has no epochs")
    train, val = (np.array([_loss(row, key) for row in rows]) for key in ("train/loss", "val/loss"))
    epochs = [int(row["epoch"]) for row in rows]
    best_i = _best_index(history.get("best_epoch"), epochs, val)

    blew_up = not (np.isfinite(train).all() and np.isfinite(val).all())
    turned_up = _val_turned_up(train, val, best_i, rise_tolerance, rise_epochs)
    gap_val = _gap(split_metrics, f"train/{primary}", f"val/{primary}")
    gap_test = _gap(split_metrics, f"train/{primary}", f"test/{primary}")
    train_primary = split_metrics.get(f"train/{primary}")

    gated = gap_val if test_given else gap_test
    judged = (gap_val,) if test_given else (gap_val, gap_test)
    worst_gap = max((g for g in judged if g is not None), default=None)
    if blew_up:
        diagnosis = "diverged"
    elif train_primary is not None and train_primary < underfit_below:
        diagnosis = "underfitting"
    elif worst_gap is not None and worst_gap > gap_limit:
        diagnosis = "overfitting"
    elif turned_up:
        diagnosis = "diverged"
    else:
        diagnosis = "ok"

    shift = (
        {"shift/primary_gap_val_test": _gap(split_metrics, f"val/{primary}", f"test/{primary}")}
        if test_given
        else {}
    )
    return {
        "overfit/loss_gap_val_train": clean(val[best_i] - train[best_i]),
        "overfit/loss_gap_val_train_final": clean(val[-1] - train[-1]),
        "overfit/primary_gap_train_val": gap_val,
        "overfit/primary_gap_train_test": gap_test,
        "overfit/primary_gap": gated,
        "overfit/gap_basis": "train - val (test split given)" if test_given else "train - test",
        "overfit/best_epoch": epochs[best_i],
        "overfit/epochs_run": len(rows),
        "overfit/diverged": bool(blew_up or turned_up),
        "overfit/diagnosis": diagnosis,
    } | shift


def _loss(row: dict[str, Any], key: str) -> float:
    if key not in row:
        raise ValueError(f"history epoch {row.get('epoch')} lacks {key!r}; keys: {sorted(row)}")
    value = row[key]
    return math.nan if value is None else float(value)


def _best_index(best_epoch: Any, epochs: list[int], val: np.ndarray) -> int:
    """Row of the recorded best epoch, else of the lowest finite validation loss, else the last row."""
    if best_epoch in epochs:
        return epochs.index(best_epoch)
    if np.isfinite(val).any():
        return int(np.nanargmin(np.where(np.isfinite(val), val, np.nan)))
    return len(epochs) - 1


def _val_turned_up(train: np.ndarray, val: np.ndarray, best_i: int, tolerance: float, needed: int) -> bool:
    """True when, after the best epoch, `needed` consecutive epochs each raised the validation loss
    above best·(1 + tolerance) and above the previous epoch while lowering the training loss."""
    ceiling = val[best_i] + tolerance * abs(val[best_i])
    run = 0
    for i in range(best_i + 1, len(val)):
        rising = val[i] > ceiling and val[i] > val[i - 1]
        run = run + 1 if rising and train[i] < train[i - 1] else 0
        if run >= needed:
            return True
    return False


def _gap(metrics: dict[str, Any], high: str, low: str) -> float | None:
    a, b = metrics.get(high), metrics.get(low)
    if a is None or b is None:
        missing = [k for k, v in ((high, a), (low, b)) if v is None]
        log.warning("overfit gap %s − %s is None: %s missing or None", high, low, missing)
        return None
    return clean(float(a) - float(b))  # rounded first, so 0.9 - 0.85 is 0.05 against a 0.05 limit
