"""`OpCursor`: op ids, and the check that a re-executed workflow meets its history.

Every context operation gets an op id: its name, or `name#n` for the n-th call of that
name. Replay must meet the ops of history in history's order (`Journal.order`).
`_enter` checks the op at hand against the next one, `_record` passes an op the run
records now, and `finish` checks that nothing of history was left unmet. A mismatch is
kept in `diverged` (a `NonDeterminismError`) and raised. `Context` is an `OpCursor`
with the workflow API on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import NonDeterminismError

if TYPE_CHECKING:
    from ledgerflow.runtime.journal import Journal


class Recorder(Protocol):
    """The session's journal and the means to record a fact in it."""

    @property
    def journal(self) -> Journal: ...
    def record(self, event: ev.Event) -> bool: ...


class OpCursor:
    """Where a run's re-execution stands against its history."""

    def __init__(self, recorder: Recorder, run_id: str) -> None:
        self._recorder = recorder
        self.run_id: str = run_id
        self._counts: dict[str, int] = {}
        self._cursor = 0
        self.diverged: NonDeterminismError | None = None

    @property
    def _j(self) -> Journal:
        return self._recorder.journal

    def _diverge(self, message: str) -> NonDeterminismError:
        self.diverged = NonDeterminismError(f"run {self.run_id!r}: {message}")
        return self.diverged

    def _op(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"an operation needs a non-empty name, got {name!r}")
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        return name if count == 1 else f"{name}#{count}"

    def _enter(self, op: str, what: str) -> None:
        """Check op against history: at this point replay must meet this op (or none)."""
        order = self._j.order
        if self._cursor < len(order):
            expected = order[self._cursor]
            if expected != op:
                raise self._diverge(
                    f"replay reached {what} {op!r} but history has {expected!r} at that "
                    "point (renamed, reordered or removed?)")
            self._cursor += 1

    def _enter_any(self, allowed: set[str], what: str) -> None:
        """Like `_enter`, for ops whose order among themselves is free (branches)."""
        order = self._j.order
        if self._cursor < len(order) and order[self._cursor] not in allowed:
            raise self._diverge(
                f"replay reached {what} but history has {order[self._cursor]!r} at that point")
        self._cursor += 1

    def _record(self, event: ev.Event) -> None:
        if self._recorder.record(event):
            self._cursor += 1

    def finish(self) -> None:
        """The function returned: history must hold nothing it did not meet."""
        order = self._j.order
        if self._cursor < len(order):
            raise self._diverge(
                f"the workflow returned, but history has {order[self._cursor]!r} next "
                "(a step was removed?)")
