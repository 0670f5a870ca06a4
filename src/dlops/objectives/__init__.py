"""The second axis beside the task kind: what a family is trained for, as its registry entry declares.

- classifier (mlp, cnn, rnn, transformer on tables, images, texts): objectives/classifier.py;
- forecaster (mlp, rnn, transformer on series): objectives/forecaster.py;
- anomaly (autoencoder, vae) and generator (gan, vae): objectives/anomaly.py, objectives/generator.py,
  written out together by objectives/detectors.py (a VAE is both).
Each objective's evaluation and serving live in its module; nothing else asks which objective it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlops.kinds.base import Kind
    from dlops.objectives.base import Served
    from dlops.params import ModelEntry, Paths, TaskConfig


def evaluate(
    model: Any,
    p: Paths,
    kind: Kind,
    entry: ModelEntry,
    splits: dict[str, Any],
    classes: list[str],
    history: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    """Every score of the model by its family's objectives; writes the evaluate stage's files."""
    from dlops.models.registry import pair_objectives

    objectives = pair_objectives(entry.family, kind.name)
    if "forecaster" in objectives:
        from dlops.objectives import forecaster

        return forecaster.evaluate(model, p, kind, entry, history, out)
    if "classifier" in objectives:
        from dlops.objectives import classifier

        return classifier.evaluate(model, p, kind, entry, splits, classes, history, out)
    from dlops.objectives import detectors

    return detectors.evaluate_non_classifier(model, objectives, entry, splits, classes, history, out)


def serving_plan(
    p: Paths, kind: Kind, entry: ModelEntry, task_cfg: TaskConfig, pair: str, scores: dict[str, Any]
) -> Served:
    """What `register` logs for the model: a classifier serves decisions, a model whose primary metric is
    an anomaly score serves anomaly flags, a generator serves samples."""
    from dlops.models.registry import pair_objectives

    objectives = pair_objectives(entry.family, kind.name)
    if "forecaster" in objectives:
        from dlops.objectives import forecaster

        return forecaster.serving(p, kind, entry, task_cfg, pair, scores)
    if "classifier" in objectives:
        from dlops.objectives import classifier

        return classifier.serving(p, kind, entry, task_cfg, pair)
    if "anomaly" in objectives and entry.gates.primary_metric.startswith("anomaly"):
        from dlops.objectives import anomaly

        return anomaly.serving(p, kind, entry, task_cfg, pair, scores)
    from dlops.objectives import generator

    return generator.serving(p, pair)
