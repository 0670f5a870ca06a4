"""Every package the code imports is declared in pyproject.toml and pinned in requirements/lock.txt."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imported_top_level() -> set[str]:
    names: set[str] = set()
    for folder in ("src/dlops", "pipelines"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"dlops", "pipelines"}}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared_and_locked() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_canonical(re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    lock = (REPO / "requirements/lock.txt").read_text(encoding="utf-8")
    locked = {_canonical(line.split("==")[0]) for line in lock.splitlines() if "==" in line}
    providers = packages_distributions()
    for module in sorted(_imported_top_level()):
        dists = {_canonical(d) for d in providers.get(module, [])}
        assert dists, f"{module}: imported, but no installed distribution provides it"
        where = f"{module} (from {sorted(dists)}): imported but not"
        assert dists & declared, f"{where} in pyproject.toml's dependencies"
        assert dists & locked, f"{where} pinned in requirements/lock.txt"
