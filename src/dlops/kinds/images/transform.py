"""The transform.json of an image task: class names, the input shape and how pixels are scaled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_transform(
    path: Path, classes: list[str], input_shape: tuple[int, ...], sensitive: list[str]
) -> None:
    data = {
        "kind": "images",
        "classes": classes,
        "input_shape": list(input_shape),
        "pixel_scale": "uint8 / 255",
        "sensitive": sensitive,
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_transform(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
