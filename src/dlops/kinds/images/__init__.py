"""Image tasks: labelled images (sklearn's bundled digits, IDX, NPZ or a folder per class), a split
that keeps copies of an image together, kornia augmentation on the training device, integrated-
gradient attributions, brightness/contrast drift, and uint8 pixels as the served input.

Modules: sources (ingest), suite (validate), transform (transform.json), augment, evaluate
(attributions), drift."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dlops.kinds.base import NEW_TASK_SPLIT, ArrayKind, NewTask, ServingInputs

log = logging.getLogger(__name__)


class Images(ArrayKind):
    name = "images"
    new_task = NewTask(
        models=("images-cnn", "images-mlp"),
        sections={
            "validate": {"min_rows": 100, "min_class_fraction": 0.02, "max_class_fraction": 0.5,
                         "max_duplicate_fraction": 0.01},
            "preprocess": {"split": NEW_TASK_SPLIT},
            "augment": {"degrees": 10.0, "translate": 0.08},
        },
        built_in_models={"images-cnn": {"family": "cnn",
                                        "model": {"channels": [16, 32, 64], "dropout": 0.2}}},
        primary_metric="accuracy",
        duplicate_key="sha1",
        template_ingest=("size", "channels"),  # the copied task's image size, not its source's other keys
    )  # fmt: skip

    def load(self, task_cfg: Any, root: Path) -> Any:
        from dlops.kinds.images.sources import load_images

        return load_images(task_cfg, root)

    def draft_suite(self, task: str, task_cfg: Any, frame: Any) -> dict[str, Any]:
        from dlops.kinds.images.suite import draft_image_suite, table_for_validation

        return draft_image_suite(table_for_validation(frame), task_cfg.columns, task_cfg.validate_, task)

    def validate(
        self, raw: Any, suite: dict[str, Any], task_cfg: Any, docs_dir: Path | None
    ) -> dict[str, Any]:
        """The suite on the per-image table; failures name the offending files."""
        from dlops.data.validation import name_files
        from dlops.kinds.images.suite import table_for_validation, validate_table

        frame = table_for_validation(raw)
        return name_files(validate_table(frame, suite, task_cfg.columns, task_cfg.validate_, docs_dir), frame)

    def preprocess(
        self, task: str, task_cfg: Any, raw: Any, p: Any, blocks: list[tuple[str, int]]
    ) -> dict[str, int]:
        """Split distinct images (copies stay together), write <split>.npz and transform.json."""
        import shutil

        from dlops.data.arrays import save_split
        from dlops.data.splitting import given_split_column, split_images, split_provenance
        from dlops.files import read_json, write_json
        from dlops.kinds.images.sources import class_names, images_array
        from dlops.kinds.images.transform import write_transform

        split = task_cfg.preprocess.split
        splits = split_images(raw, task_cfg.columns, split, blocks)
        provenance = split_provenance(raw, splits, split, key="sha1")
        if provenance["leakage"]["count"] and not given_split_column(raw, split):
            raise AssertionError(f"preprocess {task}: {provenance['leakage']} images fall in two splits")
        out = p.processed(task)
        if out.exists():
            shutil.rmtree(out)  # a former tabular layout must not linger in the DVC output
        shape: tuple[int, ...] = ()
        for name, frame in splits.items():
            pixels = images_array(frame)  # (N, C, H, W) uint8
            shape = tuple(pixels.shape[1:])
            save_split(p.image_split(task, name), frame, pixels, task_cfg.columns.sensitive)
        write_transform(p.transform(task), class_names(raw), shape, task_cfg.columns.sensitive)
        write_json(p.transform(task), {**read_json(p.transform(task)), "split": provenance})
        sizes = {name: len(frame) for name, frame in splits.items()}
        log.info("preprocess %s: %s images of shape %s", task, sizes, shape)
        return sizes

    def batch_augment(self, task_cfg: Any, num_classes: int) -> Any:
        from dlops.kinds.images.augment import make_image_augment

        return make_image_augment(task_cfg.augment)

    def evaluate_classifier(
        self, model: Any, p: Any, entry: Any, classes: list[str], test: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        """Integrated-gradient attributions of the first `evaluate.attribution_images` test images."""
        from dlops.files import write_json

        write_json(out / "interpretation.json", {})
        if n := entry.evaluate.attribution_images:
            from dlops.kinds.images.evaluate import attribution_grid

            attribution_grid(model, test["x"][:n], test["y"][:n], out / "figures" / "attributions.png")
        return {}

    def serving_inputs(self, p: Any, entry: Any, task_cfg: Any, pair: str) -> ServingInputs:
        x_test, y_test, _ = self.load_split(p, entry.task, "test")
        pixels = (x_test * 255).round().astype("uint8")  # what a caller sends: uint8 (N, C, H, W)
        return ServingInputs(
            inputs=pixels, truth=y_test, by_index=True, example=pixels[:20], pyfunc="image-classifier"
        )

    def drift(
        self, task_cfg: Any, reference: Any, current: Any, p: Any, task: str, threshold: float
    ) -> dict[str, Any]:
        from dlops.kinds.images.drift import image_drift
        from dlops.kinds.images.sources import images_array
        from dlops.monitoring.drift import with_label_drift

        report = image_drift(images_array(reference), images_array(current), threshold)
        return with_label_drift(report, reference, current, threshold)

    def drift_summary(self, report: dict[str, Any]) -> str:
        from dlops.kinds.images.drift import summary

        return summary(report)


KIND = Images()
