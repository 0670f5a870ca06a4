"""What `register` logs for a model, as its objective decides: the pyfunc class (by its key in
dlops.serving.SERVING_CLASSES, the stable module path registered models are loaded from), its artifacts,
an input example, and how to score the current champion on today's test rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Served:
    pyfunc: str  # a key of dlops.serving.SERVING_CLASSES
    artifacts: dict[str, Path]
    example: Any  # what a caller sends
    score_champion: Any = None  # model_uri -> primary metric on today's test split
    paired: Any = None  # tracking.PairedRows for the paired test
    tabular_signature: bool = False  # raw table rows in: integer columns read as float64 (a NaN must fit)

    @property
    def python_model(self) -> Any:
        """The pyfunc class `register` logs."""
        from dlops.serving import SERVING_CLASSES

        return SERVING_CLASSES[self.pyfunc]
