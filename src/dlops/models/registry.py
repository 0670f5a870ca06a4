"""A tiny registry: `@register_family("mlp")` on a builder, `build_model("mlp", ...)` to make one.

Family modules are imported lazily (torch is heavy), so listing names costs nothing.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

# name -> module that registers it; adding a family = one file + one line here + params entry.
FAMILY_MODULES: dict[str, str] = {
    "mlp": "dlops.models.mlp",
}

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_family(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        _BUILDERS[name] = builder
        return builder

    return decorate


def known_families() -> list[str]:
    return sorted(FAMILY_MODULES)


def build_model(family: str, *, input_dim: int, num_classes: int, config: dict[str, Any]) -> Any:
    """Build an `nn.Module` of `family`; its forward(x, targets=None) returns (logits, loss)."""
    if family not in FAMILY_MODULES:
        close = difflib.get_close_matches(family, known_families(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model family {family!r}; known: {known_families()}.{hint}")
    importlib.import_module(FAMILY_MODULES[family])
    return _BUILDERS[family](input_dim=input_dim, num_classes=num_classes, **config)
