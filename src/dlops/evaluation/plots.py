"""PNG figures (for MLflow and people) and the data files `dvc plots` renders.

Output is deterministic: the same input gives the same bytes. Figures are drawn on a private Agg
canvas under matplotlib's default style (no pyplot state, no user rcParams) and saved without the
"Software" PNG tag, the only varying metadata matplotlib writes into a PNG.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlops.evaluation.metrics import (
    calibration_bins,
    check_predictions,
    expected_calibration_error,
    predictions_table,
)
from dlops.evaluation.report import clean
from dlops.files import write_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_ROC_POINTS = 200
RATE_COLUMNS = ("selection_rate", "tpr", "fpr")


@contextmanager
def png_figure(path: Path, figsize: tuple[float, float]) -> Iterator[Figure]:
    """A matplotlib figure saved as a PNG with no timestamp or version, so reruns give the same bytes."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):
        fig = Figure(figsize=figsize, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


# ------------------------------------------------------------------------------------------ curves
def roc_points(
    y_true: np.ndarray, proba: np.ndarray, max_points: int = MAX_ROC_POINTS
) -> list[dict[str, Any]]:
    """ROC curve as rows {fpr, tpr, threshold}, evenly thinned to at most `max_points` (ends kept).

    Binary: of proba[:, 1]. Multiclass: the micro-average over one-vs-rest columns. Empty when
    y_true holds a single class (binary). The first threshold (+inf in scikit-learn) is None.
    """
    from sklearn.metrics import roc_curve

    y, p = check_predictions(y_true, proba)
    k = p.shape[1]
    if k == 2:
        if np.unique(y).size < 2:
            return []
        fpr, tpr, thresholds = roc_curve(y, p[:, 1])
    else:
        onehot = np.eye(k, dtype=np.int64)[y]
        fpr, tpr, thresholds = roc_curve(onehot.ravel(), p.ravel())
    keep = np.arange(fpr.size)
    if fpr.size > max_points:
        keep = np.unique(np.round(np.linspace(0, fpr.size - 1, max_points)).astype(int))
    return [{"fpr": clean(fpr[i]), "tpr": clean(tpr[i]), "threshold": clean(thresholds[i])} for i in keep]


def history_rows(history: dict[str, Any]) -> list[dict[str, Any]]:
    """history.json epochs with every value JSON-safe (rounded, NaN → None)."""
    return [{key: clean(value) for key, value in row.items()} for row in history.get("epochs", [])]


# ------------------------------------------------------------------------------------------ data files
def write_plot_data(
    out_dir: Path,
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    history: dict[str, Any],
    y_pred: np.ndarray | None = None,
) -> list[Path]:
    """Write roc.json, calibration.json, learning_curve.json and predictions.csv for `dvc plots`.

    All four are always written (DVC fails a stage whose declared output is missing): roc.json holds
    the micro-average curve for multiclass and an empty list when the curve is undefined.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        write_json(out_dir / "roc.json", {"roc": roc_points(y_true, proba)}),
        write_json(out_dir / "calibration.json", {"calibration": calibration_bins(y_true, proba)}),
        write_json(out_dir / "learning_curve.json", {"history": history_rows(history)}),
    ]
    table = predictions_table(y_true, proba, class_names, y_pred)[["actual", "predicted"]]
    csv = out_dir / "predictions.csv"
    table.to_csv(csv, index=False, lineterminator="\n")
    return [*written, csv]


# ------------------------------------------------------------------------------------------ figures
def plot_confusion_matrix(
    out_dir: Path, y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]
) -> Path:
    """confusion_matrix.png: colour = share of the actual class (row), text = count."""
    from sklearn.metrics import confusion_matrix

    k = len(class_names)
    counts = confusion_matrix(np.asarray(y_true).ravel(), np.asarray(y_pred).ravel(), labels=list(range(k)))
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    path = Path(out_dir) / "confusion_matrix.png"
    side = 3.0 + 0.5 * k
    with png_figure(path, (side + 1.0, side)) as fig:
        ax = fig.subplots()
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(image, ax=ax, label="share of actual class")
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    color="white" if share[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(k), class_names, rotation=45, ha="right")
        ax.set_yticks(range(k), class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
    return path


def plot_roc(out_dir: Path, y_true: np.ndarray, proba: np.ndarray) -> Path | None:
    """roc.png (binary: positive class; multiclass: micro-average); None when y_true has one class."""
    from sklearn.metrics import roc_auc_score

    points = roc_points(y_true, proba, max_points=1000)
    if not points:
        return None
    y, p = check_predictions(y_true, proba)
    if p.shape[1] == 2:
        auc, label = roc_auc_score(y, p[:, 1]), "positive class"
    else:
        auc, label = roc_auc_score(np.eye(p.shape[1])[y].ravel(), p.ravel()), "micro-average"
    path = Path(out_dir) / "roc.png"
    with png_figure(path, (5.0, 5.0)) as fig:
        ax = fig.subplots()
        ax.plot([r["fpr"] for r in points], [r["tpr"] for r in points], label=f"{label}, AUC {auc:.3f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right")
    return path


def plot_calibration(out_dir: Path, y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> Path:
    """calibration.png: reliability diagram of the top-label confidence, with the ECE in the title."""
    bins = calibration_bins(y_true, proba, n_bins)
    ece = expected_calibration_error(y_true, proba, n_bins)
    path = Path(out_dir) / "calibration.png"
    with png_figure(path, (5.0, 5.0)) as fig:
        ax = fig.subplots()
        width = 1.0 / n_bins
        ax.bar(
            [b["lower"] for b in bins],
            [b["accuracy"] for b in bins],
            width=width,
            align="edge",
            edgecolor="black",
            label="accuracy in bin",
        )
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            "o",
            color="C1",
            label="(mean confidence, accuracy)",
        )
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        ax.set(
            xlabel="confidence (top label)",
            ylabel="accuracy",
            xlim=(0, 1),
            ylim=(0, 1),
            title=f"ECE {ece:.4f} ({n_bins} bins)",
        )
        ax.legend(loc="upper left")
    return path


def plot_group_bars(out_dir: Path, tables: dict[str, list[dict[str, Any]]]) -> Path | None:
    """fairness_groups.png: per-group rates for each attribute (one panel each); None without attributes.

    Groups too small to be measured are labelled so and drawn hatched; undefined rates are left out.
    """
    if not tables:
        return None
    path = Path(out_dir) / "fairness_groups.png"
    with png_figure(path, (8.0, 3.0 * len(tables))) as fig:
        axes = fig.subplots(len(tables), 1, squeeze=False)[:, 0]
        for ax, (attr, rows) in zip(axes, tables.items(), strict=True):
            columns = [c for c in (rows[0] if rows else {}) if c.split("/")[0] in RATE_COLUMNS]
            x = np.arange(len(rows))
            width = 0.8 / max(1, len(columns))
            for j, column in enumerate(columns):
                heights = [np.nan if r[column] is None else r[column] for r in rows]
                bars = ax.bar(x + j * width, heights, width=width, label=column)
                for bar, row in zip(bars, rows, strict=True):
                    if not row["measurable"]:
                        bar.set_hatch("//")
            labels = [
                f"{r['group']}\n(n={r['count']}" + (")" if r["measurable"] else ", too small)") for r in rows
            ]
            ax.set_xticks(x + width * (len(columns) - 1) / 2, labels)
            ax.set(ylim=(0, 1.05), ylabel="rate", title=attr)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return path


def plot_learning_curves(out_dir: Path, history: dict[str, Any]) -> Path:
    """learning_curves.png: train/val loss and (when logged) accuracy per epoch; best epoch marked."""
    rows = history.get("epochs", [])
    metrics = [m for m in ("loss", "accuracy") if rows and f"train/{m}" in rows[0]]
    epochs = [row["epoch"] for row in rows]
    path = Path(out_dir) / "learning_curves.png"
    with png_figure(path, (5.0 * max(1, len(metrics)), 4.0)) as fig:
        axes = fig.subplots(1, max(1, len(metrics)), squeeze=False)[0]
        for ax, metric in zip(axes, metrics, strict=False):
            for split in ("train", "val"):
                values = [_nan_if_none(row.get(f"{split}/{metric}")) for row in rows]
                ax.plot(epochs, values, marker="o", markersize=3, label=f"{split}/{metric}")
            if history.get("best_epoch"):
                ax.axvline(history["best_epoch"], color="grey", linestyle=":", label="best epoch")
            ax.set(xlabel="epoch", ylabel=metric)
            ax.legend()
    return path


def write_plots(
    out_dir: Path,
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    history: dict[str, Any],
    fairness_tables: dict[str, list[dict[str, Any]]] | None = None,
    y_pred: np.ndarray | None = None,
) -> list[Path]:
    """Every PNG above that applies to this data; returns the paths written (`y_pred`: decisions
    other than the argmax of `proba`, e.g. fair thresholds)."""
    y_pred = np.asarray(proba).argmax(axis=1) if y_pred is None else y_pred
    paths: Sequence[Path | None] = [
        plot_confusion_matrix(out_dir, y_true, y_pred, class_names),
        plot_roc(out_dir, y_true, proba),
        plot_calibration(out_dir, y_true, proba),
        plot_group_bars(out_dir, fairness_tables or {}),
        plot_learning_curves(out_dir, history),
    ]
    return [p for p in paths if p is not None]


def _nan_if_none(value: Any) -> float:
    return float("nan") if value is None else float(value)
