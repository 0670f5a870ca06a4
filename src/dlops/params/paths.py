"""Every file the pipeline reads or writes, relative to the project root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlops.params.tasks import TaskConfig

PROJECT_ROOT = Path(os.environ.get("DLOPS_ROOT", Path.cwd())).resolve()
SPLITS = ("train", "val", "test")  # the processed splits of every task, in this order


class Paths:
    """Every file the pipeline reads or writes, relative to the project root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.params = root / "params.yaml"
        self.dvc_yaml = root / "dvc.yaml"
        self.dvc_lock = root / "dvc.lock"
        self.dag = root / "dag.yaml"  # what dvc.yaml reads of params.yaml (dlops dag)
        self.plots = root / "reports" / "dvc.yaml"  # the plots `dvc plots show` draws (dlops dag)
        self.state = root / ".dlops"  # resume checkpoints, locks: never DVC outputs

    def raw(self, task: str) -> Path:
        return self.root / "data" / "raw" / f"{task}.parquet"

    def suite(self, task_cfg: TaskConfig) -> Path:
        return self.root / task_cfg.validate_.suite

    def validation_report(self, task: str) -> Path:
        return self.root / "reports" / "validate" / task / "summary.json"

    def data_docs(self, task: str) -> Path:
        return self.root / "reports" / "validate" / task / "data_docs"

    def processed(self, task: str) -> Path:
        return self.root / "data" / "processed" / task

    def split(self, task: str, split: str) -> Path:
        return self.processed(task) / f"{split}.parquet"

    def image_split(self, task: str, split: str) -> Path:
        return self.processed(task) / f"{split}.npz"

    def raw_split(self, task: str, split: str) -> Path:
        return self.processed(task) / f"{split}_raw.parquet"

    def transform(self, task: str) -> Path:
        return self.processed(task) / "transform.json"

    def model_dir(self, pair: str) -> Path:
        return self.root / "models" / pair

    def checkpoint(self, pair: str) -> Path:
        return self.model_dir(pair) / "model.pt"

    def history(self, pair: str) -> Path:
        return self.root / "reports" / "train" / pair / "history.json"

    def resume_checkpoint(self, pair: str) -> Path:
        return self.state / "checkpoints" / pair / "last.pt"

    def eval_dir(self, pair: str) -> Path:
        return self.root / "reports" / "evaluate" / pair

    def eval_metrics(self, pair: str) -> Path:
        return self.eval_dir(pair) / "metrics.json"

    def eval_headline(self, pair: str) -> Path:
        """About ten of metrics.json's figures and the gates' verdict: the DVC metric people compare."""
        return self.eval_dir(pair) / "headline.json"

    def search_result(self, pair: str) -> Path:
        """The best parameters `train` reads, for a pair with a search."""
        return self.root / "reports" / "search" / f"{pair}.json"

    def search_storage(self) -> str:
        """The default Optuna storage: one SQLite file beside the resume checkpoints, never a DVC output."""
        return f"sqlite:///{self.state / 'optuna.db'}"

    def pretraining_report(self, name: str) -> Path:
        return self.root / "reports" / "pretraining" / f"{name}.json"

    def register_report(self, pair: str) -> Path:
        return self.root / "reports" / "register" / f"{pair}.json"


def paths(root: Path | None = None) -> Paths:
    return Paths((root or Path(os.environ.get("DLOPS_ROOT", Path.cwd()))).resolve())
