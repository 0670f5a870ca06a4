"""The interface between the stages and a task kind (tabular, images, text, ...).

A kind is one package under `dlops.kinds` whose `__init__` defines `KIND`, an instance of a `Kind`
subclass. The stages call only these methods; nothing outside a kind's package asks which kind a task
is. Think of Lightning's DataModule: a dataset's loading, checking, splitting, transforms, batch
augmentation, kind-specific evaluation, drift statistics and serving inputs behind one object.

Heavy libraries (torch, pandas, great_expectations) are imported inside the methods that use them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from dlops.params import ModelEntry, Paths, TaskConfig


NEW_TASK_SPLIT = {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}  # a drafted task's random split


@dataclass(frozen=True)
class NewTask:
    """What `dlops add-task` drafts for a task of this kind: the params.yaml model entries it copies, and
    what it uses when params.yaml has no task or model of the kind to copy (small, every limit loose)."""

    models: tuple[str, ...]  # the model entries copied for the new task, in order
    sections: dict[str, Any]  # built-in validate, preprocess and augment sections
    built_in_models: dict[str, dict[str, Any]]  # family and model of a copied entry params.yaml lacks
    primary_metric: str  # a built-in model's gated metric
    duplicate_key: str  # the raw column whose repeats the drafted suite counts
    template_ingest: tuple[str, ...] = ()  # ingest keys kept from the copied task (an image size)


@dataclass
class ServingInputs:
    """What a registered classifier of this kind is called with, and what comes with the model.

    `inputs` is what a caller sends (a frame of raw rows, or uint8 pixels); `truth` the true class of
    each input (names for frames, indices for arrays); `artifacts` the files the pyfunc needs besides
    the checkpoint; `pyfunc` the `mlflow.pyfunc.PythonModel` class serving a classifier of this kind."""

    inputs: Any
    truth: Any
    by_index: bool
    example: Any
    pyfunc: Any
    artifacts: dict[str, Path] = field(default_factory=dict)
    tabular_signature: bool = False  # the input example is a table whose column types make the signature


class Kind:
    """One task kind. Subclasses override what differs; every method takes plain values."""

    name: str = ""
    new_task: NewTask | None = None  # None: `dlops add-task` does not draft tasks of this kind

    # ---------------------------------------------------------------------------------------- ingest
    def load(self, task_cfg: TaskConfig, root: Path) -> pd.DataFrame:
        """The raw table of the task's `ingest` source."""
        raise NotImplementedError

    def tag_batch_rows(self, frame: pd.DataFrame, batch_id: str) -> pd.DataFrame:
        """A batch's rows as stored in data/raw (e.g. source lines prefixed with the batch id)."""
        return frame

    def observed_limits(self, frame: pd.DataFrame) -> dict[str, tuple[Any, str]]:
        """Validate limits beyond the common ones that `dlops add-task` fits to the file: key -> (the
        file's value, why in words with `{}` for the value); the limit moves only to let the file pass."""
        return {}

    # -------------------------------------------------------------------------------------- validate
    def draft_suite(self, task: str, task_cfg: TaskConfig, frame: pd.DataFrame) -> dict[str, Any]:
        """A Great Expectations suite profiled from the raw table (`dlops expectations init`)."""
        raise NotImplementedError

    def validate(
        self, raw: pd.DataFrame, suite: dict[str, Any], task_cfg: TaskConfig, docs_dir: Path | None
    ) -> dict[str, Any]:
        """The suite's results on the raw table, failures naming rows, files or lines."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ preprocess
    def preprocess(
        self, task: str, task_cfg: TaskConfig, raw: pd.DataFrame, p: Paths, blocks: list[tuple[str, int]]
    ) -> dict[str, int]:
        """Split, fit the transform on train only, write data/processed/<task>; returns split sizes."""
        raise NotImplementedError

    def split_file(self, p: Paths, task: str, split: str) -> Path:
        """The processed file of one split (hashed into lineage and study names)."""
        raise NotImplementedError

    def load_split(self, p: Paths, task: str, split: str) -> tuple[Any, Any, dict[str, Any]]:
        """(x float32 or int64 token ids, y int64 (N,), {attribute: group labels}) of one split."""
        raise NotImplementedError

    def classes_and_shape(self, transform: dict[str, Any]) -> tuple[list[str], tuple[int, ...]]:
        """Class names and the shape of one model input, from the task's transform.json."""
        return [str(c) for c in transform["classes"]], tuple(transform["input_shape"])

    def model_config(self, transform: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
        """The family config: params' `model` plus what the fitted transform fixes (a vocabulary)."""
        return dict(model)

    # ----------------------------------------------------------------------------------------- train
    def batch_augment(self, task_cfg: TaskConfig, num_classes: int) -> Any:
        """The training-batch transform `(x, y, generator) -> (x, y)` that `augment` asks for, or None."""
        return None

    # -------------------------------------------------------------------------------------- evaluate
    def evaluate_classifier(
        self, model: Any, p: Paths, entry: ModelEntry, classes: list[str], test: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        """Kind-specific evaluation of a classifier on the test split (interpretation, attributions,
        behavioural tests); writes out/interpretation.json and figures, returns extra metrics."""
        from dlops.files import write_json

        write_json(out / "interpretation.json", {})
        return {}

    def evaluate_forecaster(
        self, model: Any, p: Paths, entry: ModelEntry, history: dict[str, Any], out: Path
    ) -> dict[str, Any]:
        """A forecaster's evaluation on this kind's windows (errors, references, backtest, intervals,
        errors by group, plots); writes the evaluate stage's files, returns every score."""
        raise NotImplementedError(f"{self.name} tasks have no forecasts")

    # ------------------------------------------------------------------------------------- serving
    def serving_inputs(self, p: Paths, entry: ModelEntry, task_cfg: TaskConfig, pair: str) -> ServingInputs:
        """Today's test inputs as a caller sends them, with the artifacts a classifier pyfunc needs."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- monitor
    def drift(
        self,
        task_cfg: TaskConfig,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        p: Paths,
        task: str,
        threshold: float,
    ) -> dict[str, Any]:
        """Drift statistics of a batch against the reference raw table."""
        raise NotImplementedError

    def batch_problems(
        self, task_cfg: TaskConfig, accepted: Callable[[], pd.DataFrame], batch: pd.DataFrame
    ) -> list[str]:
        """Why a new batch cannot follow the data accepted so far (`accepted()` reads it) beyond what the
        suite checks, e.g. a series batch that goes back in time; each problem quarantines the batch."""
        return []

    def drift_summary(self, report: dict[str, Any]) -> str:
        """The drift report as a short Markdown summary."""
        raise NotImplementedError

    def batch_spec_for_path(self, path: str) -> dict[str, Any]:
        """`dlops batch add --path PATH` as a source spec of this kind."""
        return {"path": path}


class ArrayKind(Kind):
    """A kind whose splits are arrays in .npz files (data/arrays.py), one row per source file or line:
    a batch's rows name their batch before the file or line they came from."""

    def tag_batch_rows(self, frame: pd.DataFrame, batch_id: str) -> pd.DataFrame:
        if "source" not in frame.columns:
            return frame
        return frame.assign(source=[f"{batch_id}:{s}" for s in frame["source"].astype(str)])

    def split_file(self, p: Paths, task: str, split: str) -> Path:
        return Path(p.image_split(task, split))

    def load_split(self, p: Paths, task: str, split: str) -> tuple[Any, Any, dict[str, Any]]:
        from dlops.data.arrays import load_array_split

        return load_array_split(p.image_split(task, split))
