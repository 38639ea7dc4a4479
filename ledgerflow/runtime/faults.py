"""Named fault points at commit boundaries, for crash tests (as DBOS's debug triggers).

A `FaultPoints` object belongs to one engine (its `Runtime`) and is built at the
edge: from the `faults` setting (`LEDGERFLOW_FAULTS`, so a test can arm a
subprocess through its environment) by `Ledgerflow.open`, the CLI and
`ledgerflow.testing`, or in-process by a test that calls `arm`. Nothing here reads
the environment or keeps module-level state. The setting reads
`name=exit:CODE,other=raise,third=kill`. Calling the object with a point's name
(`faults("step_committed")`) is a no-op unless that name is armed. An armed point
raises `InjectedFault` (a `BaseException`, so workflow code and the executor cannot
swallow it, as a crash would not be swallowed), ends the process at once with
`os._exit(CODE)` (`exit`, default code 137), or sends the process SIGKILL (`kill`).

Points the engine passes, in order, for one step:
- `run_claimed`       after the claim transaction committed;
- `run_handed`        a worker thread took a run its trigger leased to it (eager start);
- `step_executed`     the step's function returned, its completion is not committed;
- `step_committed`    the transaction holding the step's completion committed;
- `run_finishing`     just before the transaction that ends a run (complete/fail).
A command (trigger, signal, event, token, cancel) passes `command_committed` right
after its transaction, idempotency key included, committed.
The outbox relay passes `relay.published` (the broker acknowledged a batch, its rows
are not marked yet) when given the object as its `fault_point`.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass

ENV_VAR = "LEDGERFLOW_FAULTS"
ACTIONS = ("raise", "exit", "kill")


class InjectedFault(BaseException):
    """Raised by an armed fault point: simulates the process dying right there."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"injected fault at {name!r}")


@dataclass
class _Armed:
    action: str  # one of ACTIONS
    exit_code: int
    skip: int  # passes to let through before firing


class FaultPoints:
    """The fault points armed for one engine; call it with a point's name to pass it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, _Armed] = {}

    @classmethod
    def parse(cls, spec: str | None) -> FaultPoints:
        """Fault points armed as `spec` says (`name=exit:CODE,other=raise,third=kill`)."""
        points = cls()
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            name, _, action = item.partition("=")
            kind, _, code = (action or "raise").partition(":")
            if not name or kind not in ACTIONS:
                raise ValueError(f"{ENV_VAR}: {item!r} is not NAME=raise|exit[:CODE]|kill")
            try:
                exit_code = int(code or 137)
            except ValueError:
                raise ValueError(f"{ENV_VAR}: exit code {code!r} in {item!r} is not a "
                                 "number") from None
            points.arm(name, kind, exit_code=exit_code)
        return points

    def arm(self, name: str, action: str = "raise", *, exit_code: int = 137,
            skip: int = 0) -> None:
        """Make the point `name` fire after letting `skip` passes through."""
        if action not in ACTIONS:
            raise ValueError(f"fault action must be one of {', '.join(ACTIONS)}, not {action!r}")
        with self._lock:
            self._armed[name] = _Armed(action, exit_code, skip)

    def disarm(self, name: str | None = None) -> None:
        """Disarm one point, or all of them."""
        with self._lock:
            if name is None:
                self._armed.clear()
            else:
                self._armed.pop(name, None)

    @property
    def armed(self) -> frozenset[str]:
        """The names of the points armed now."""
        with self._lock:
            return frozenset(self._armed)

    def __call__(self, name: str) -> None:
        """Pass the point `name`: fire if it is armed (an in-process raise fires once)."""
        if not self._armed:
            return
        with self._lock:
            armed = self._armed.get(name)
            if armed is None:
                return
            if armed.skip > 0:
                armed.skip -= 1
                return
            if armed.action == "raise":
                del self._armed[name]
        if armed.action == "exit":
            os._exit(armed.exit_code)
        if armed.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(name)
