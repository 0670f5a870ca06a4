"""Run the `dlops` command with a fault injected right after one real call returns:
`python fault_injection.py register tabular-mlp` with

- DLOPS_FAULT_AFTER=`module:Class.method` (or `module:function`): the call to wrap;
- DLOPS_FAULT_WHEN_ARG (optional): fire only when one of the call's arguments equals this string
  (e.g. `previous` for `MlflowClient.set_registered_model_alias`);
- DLOPS_FAULT_KILL_GROUP (optional): SIGKILL this process group (a tracking server started in its own
  session) and carry on, instead of SIGKILL-ing this process.

The call has done its work when the fault fires, so what is left behind is exactly the state between
that call and the next one. Used by tests/integration/test_faults.py.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def _fire() -> None:
    group = os.environ.get("DLOPS_FAULT_KILL_GROUP")
    if group:
        os.killpg(int(group), signal.SIGKILL)
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _wrapped(real: Callable[..., Any], when: str | None) -> Callable[..., Any]:
    @functools.wraps(real)
    def call(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if when is None or when in [str(a) for a in (*args, *kwargs.values())]:
            _fire()
        return out

    return call


def inject(target: str, when: str | None) -> None:
    """Replace `module:Owner.attr` (a function, method, classmethod or staticmethod) by its faulty twin."""
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attr = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    raw = inspect.getattr_static(owner, attr)
    if isinstance(raw, classmethod | staticmethod):
        setattr(owner, attr, type(raw)(_wrapped(raw.__func__, when)))
    else:
        setattr(owner, attr, _wrapped(raw, when))


def main() -> None:
    inject(os.environ["DLOPS_FAULT_AFTER"], os.environ.get("DLOPS_FAULT_WHEN_ARG"))
    from dlops.cli import app

    sys.argv = ["dlops", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
