"""Named fault points at commit boundaries, for crash tests (as DBOS's debug triggers).

`fault_point("step_executed")` is a no-op unless a test armed that name. Arming
happens either in-process (`arm`) or for a subprocess through the environment
variable `LEDGERFLOW_FAULTS`, read ONCE when this module is imported, of the form
`name=exit:CODE,other=raise`. An armed point raises `InjectedFault` (a
`BaseException`, so workflow code and the executor cannot swallow it, as a crash
would not be swallowed) or ends the process at once with `os._exit(CODE)`.

Points the engine passes, in order, for one step:
- `run_claimed`       after the claim transaction committed;
- `step_executed`     the step's function returned, its completion is not committed;
- `step_committed`    the transaction holding the step's completion committed;
- `run_finishing`     just before the transaction that ends a run (complete/fail).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

ENV_VAR = "LEDGERFLOW_FAULTS"


class InjectedFault(BaseException):
    """Raised by an armed fault point: simulates the process dying right there."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"injected fault at {name!r}")


@dataclass
class _Armed:
    action: str  # "raise" | "exit"
    exit_code: int
    skip: int  # passes to let through before firing


_lock = threading.Lock()
_armed: dict[str, _Armed] = {}


def _parse(spec: str) -> dict[str, _Armed]:
    armed: dict[str, _Armed] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, action = item.partition("=")
        kind, _, code = (action or "raise").partition(":")
        if kind not in ("raise", "exit"):
            raise ValueError(f"{ENV_VAR}: unknown fault action {kind!r} in {item!r}")
        armed[name] = _Armed(kind, int(code or 137), 0)
    return armed


_armed.update(_parse(os.environ.get(ENV_VAR, "")))


def arm(name: str, action: str = "raise", *, exit_code: int = 137, skip: int = 0) -> None:
    """Make `fault_point(name)` fire after letting `skip` passes through."""
    if action not in ("raise", "exit"):
        raise ValueError(f"fault action must be 'raise' or 'exit', not {action!r}")
    with _lock:
        _armed[name] = _Armed(action, exit_code, skip)


def disarm(name: str | None = None) -> None:
    """Disarm one point, or all of them."""
    with _lock:
        if name is None:
            _armed.clear()
        else:
            _armed.pop(name, None)


def fault_point(name: str) -> None:
    """Fire if `name` is armed (once: an in-process raise disarms the point)."""
    if not _armed:
        return
    with _lock:
        armed = _armed.get(name)
        if armed is None:
            return
        if armed.skip > 0:
            armed.skip -= 1
            return
        if armed.action == "raise":
            del _armed[name]
    if armed.action == "exit":
        os._exit(armed.exit_code)
    raise InjectedFault(name)
