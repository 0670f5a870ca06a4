"""Small helpers that make evaluation output plain, JSON-safe and byte-stable across identical runs."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

DECIMALS = 6
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
# Comparison operators are common in class names (adult income: "<=50K", ">50K"); spell them out.
_OPERATORS = (("<=", "le"), (">=", "ge"), ("!=", "ne"), ("<", "lt"), (">", "gt"), ("=", "eq"))


def clean(value: Any) -> Any:
    """A float rounded to 6 decimals (None for NaN/inf), an int, a bool or a str; numpy scalars unwrapped."""
    if value is None or isinstance(value, bool | str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, bool | int):
        return value
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def key_part(name: Any) -> str:
    """A class or group name made safe for a metric key (MLflow allows only [/\\w.\\- :])."""
    text = str(name)
    for op, word in _OPERATORS:
        text = text.replace(op, word)
    text = _UNSAFE.sub("_", text)
    return text if text.strip(".") else "_"  # "", "." and ".." would break MLflow's path-like names


def unique_key_parts(names: list[Any]) -> list[str]:
    """`key_part` of each name, suffixed with its index where two names would collide."""
    parts = [key_part(n) for n in names]
    return [p if parts.count(p) == 1 else f"{p}_{i}" for i, p in enumerate(parts)]


def flatten(prefix: str, d: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"<prefix>/a/b": 1}`, values passed through `clean`."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(name, value))
        else:
            out[name] = clean(value)
    return out
