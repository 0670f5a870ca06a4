"""Task kinds, one package each: `dlops.kinds.<name>` defines `KIND` (a `kinds.base.Kind`).

A kind registers itself by being a package here: adding one is a new folder, its params schema and
its tests. Packages are imported on first use, so listing names costs nothing.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlops.kinds.base import Kind


def known_kinds() -> list[str]:
    """The kind packages under dlops/kinds, by name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


@cache
def get_kind(name: str) -> Kind:
    """The kind called `name`; an unknown name is an error listing the known ones."""
    known = known_kinds()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown task kind {name!r}{hint} (known: {', '.join(known)})")
    kind: Kind = importlib.import_module(f"{__name__}.{name}").KIND
    return kind


def kind_of(task_cfg: Any) -> Kind:
    """The kind of a task's params section (its `kind:` key)."""
    return get_kind(str(task_cfg.kind))
