"""The commands that act on a run that exists: signal, event, token, cancel.

Each folds the run's stream, decides what the command means in the state it
finds (through `domain.state.decide` where the lifecycle changes), and appends
with the version it folded; a concurrent change makes it read and decide again.
A command that wakes a suspended run makes its queue row due in the same
transaction. `Engine` composes them over its `Runtime`.

Each takes an optional `IdempotencyKey` (`eventstore.idempotency`), honoured in the
command's own transaction: the key is claimed before the run is read, and its result
is written with the command's events, so a retry after any crash replays (nothing
appended) instead of delivering twice. The fault point `command_committed` fires
right after that transaction commits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import (
    ConcurrencyError,
    IllegalTransition,
    InvalidRequest,
    NotAwaited,
    UnknownRun,
)
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.state import Cancel, Rollback, RunState, Wake, decide
from ledgerflow.eventstore.idempotency import IdempotencyKey, run_once
from ledgerflow.eventstore.records import NewEvent, StreamAppend
from ledgerflow.eventstore.store import Transaction
from ledgerflow.runtime import queue, runs
from ledgerflow.runtime.compensation import cancel_error, canceling
from ledgerflow.runtime.failures import json_roundtrip
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import Journal
from ledgerflow.runtime.listen import announce
from ledgerflow.runtime.streams import event_metadata

Key = IdempotencyKey[None]
"""A command's idempotency key: a command's outcome is None (its `remember` may read
the run as the command left it, through the connection it is given)."""


def json_value(value: Any, what: str) -> Any:
    """`value` as the store will keep it, or `InvalidRequest` saying why it cannot."""
    return json_roundtrip(value, what, InvalidRequest)


class RunCommands:
    """Signal, event, token and cancel on the runs of one `Runtime`."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def signal(self, run_id: str, name: str, payload: Any = None, *,
               actor: str | None = None, idempotency_key: Key | None = None) -> bool:
        """Deliver signal `name`; buffered when the run is not waiting for it yet.
        True when it woke the run (False: buffered, or a replay of its key)."""
        data = json_value(payload, "signal payload")
        return self._deliver(run_id, "signal", name, ev.SignalReceived(name=name, payload=data),
                             actor, idempotency_key)

    def send_event(self, run_id: str, event_type: str, payload: Any = None, *,
                   actor: str | None = None, idempotency_key: Key | None = None) -> bool:
        """Deliver an external event; buffered when the run is not waiting for it yet.
        True when it woke the run (False: buffered, or a replay of its key)."""
        data = json_value(payload, "event payload")
        return self._deliver(run_id, "event", event_type,
                             ev.EventReceived(event_type=event_type, payload=data), actor,
                             idempotency_key)

    def _deliver(self, run_id: str, kind: str, name: str, event: ev.Event,
                 actor: str | None, key: Key | None) -> bool:
        def build(journal: Journal) -> tuple[list[ev.Event], bool]:
            state = journal.state
            if state.is_terminal:
                raise NotAwaited(run_id, kind, name)
            wp = state.waitpoint
            if state.status is RunStatus.SUSPENDED and wp is not None and wp.kind == kind \
                    and wp.name == name:
                return [event, *decide(state, Wake(reason=kind, name=name))], True
            return [event], False

        return self._command(run_id, build, actor, key=key)

    def resolve_token(self, run_id: str, token_id: str, payload: Any = None, *,
                      actor: str | None = None, idempotency_key: Key | None = None) -> None:
        """Resolve the token the run waits on (`NotAwaited` if it is not waiting on it):
        a `wait_for_token`'s, or an agent step's (the payload: its tool results)."""
        data = json_value(payload, "token payload")

        def build(journal: Journal) -> tuple[list[ev.Event], bool]:
            state, wp = journal.state, journal.state.waitpoint
            if state.status is not RunStatus.SUSPENDED or wp is None \
                    or wp.kind not in ("token", "agent") or wp.token_id != token_id:
                raise NotAwaited(run_id, "token", token_id)
            return [ev.TokenResolved(token_id=token_id, payload=data),
                    *decide(state, Wake(reason=wp.kind, name=wp.name))], True

        self._command(run_id, build, actor, key=idempotency_key)

    def cancel(self, run_id: str, reason: str | None = None, *, compensate: bool = False,
               actor: str | None = None, idempotency_key: Key | None = None) -> None:
        """Cancel a non-terminal run (`IllegalTransition` if terminal), then its children.

        A step of the run in flight in this process has its `current_step().cancelled`
        set at once (in another process: at that worker's next heartbeat). With
        `compensate`, a running or suspended run with completed steps rolls back first
        (RunCompensating for the cancel; its waits end at once): a worker runs the
        compensators of its completed steps, then appends RunCanceled (see
        `runtime.compensation`). As Temporal's default parent-close policy: the run's
        unfinished children (and theirs) are canceled too, likewise, each in its own
        transaction after the parent's (a cancel replayed by its key cancels them too:
        the first may have crashed before).
        """
        children: list[str] | None = None
        ended = True

        def build(journal: Journal) -> tuple[list[ev.Event], bool]:
            nonlocal ended
            events, ended = _cancel_events(journal.state, reason, compensate)
            return events, not ended

        def also(tx: Transaction, journal: Journal) -> None:
            nonlocal children
            children = list(journal.state.children)
            if ended:
                queue.remove(tx, run_id, held=True)
                error = ev.ErrorInfo(type="Canceled", message=reason or "canceled")
                runs.notify_parent(self.rt, tx, journal, "canceled", None, error)

        self._command(run_id, build, actor, also, idempotency_key)
        if children is None:  # replayed
            state = self.rt.journal(run_id).state
            children, ended = list(state.children), state.is_terminal
        if ended:
            self.rt.finished.mark(run_id)
        self.rt.inflight.cancel(run_id)
        self.rt.wakeup.notify()
        for child in children:
            with contextlib.suppress(IllegalTransition):  # that child had finished already
                self.cancel(child, f"parent run {run_id} was canceled", compensate=compensate,
                            actor=actor)

    def _command(self, run_id: str,
                 build: Callable[[Journal], tuple[list[ev.Event], bool]], actor: str | None,
                 also: Callable[[Transaction, Journal], None] | None = None,
                 key: Key | None = None) -> bool:
        """Read the run, decide with `build`, append, in one transaction (once per key);
        True when it woke the run (False too when its key was replayed)."""
        woke: list[bool] = []

        def apply(tx: Transaction) -> None:
            journal = Journal.build(run_id, tx.read_stream(run_id))
            if journal.created is None:
                raise UnknownRun(run_id)
            events, wake = build(journal)
            meta = event_metadata(journal.base_metadata, journal.last_event_id, actor)
            tx.append(StreamAppend(run_id, [NewEvent(e, metadata=meta) for e in events],
                                   journal.version))
            if wake:
                queue.wake(tx, run_id, self.rt.clock())
                announce(tx, self.rt.worker_id)
            if also is not None:
                also(tx, journal)
            woke.append(wake)

        for _ in range(50):
            woke.clear()
            try:
                run_once(self.rt.store, key, apply)
            except ConcurrencyError:
                continue
            self.rt.faults("command_committed")
            if any(woke):
                self.rt.wakeup.notify()
            return any(woke)
        raise ConcurrencyError(run_id, -1, -1)


def _cancel_events(state: RunState, reason: str | None,
                   compensate: bool) -> tuple[list[ev.Event], bool]:
    """What a cancel appends, and whether it ends the run now (else it rolls back first:
    only a running or suspended run with completed steps has anything to undo)."""
    if compensate and canceling(state):
        return [], False  # canceled with compensation already: it is under way
    if compensate and state.completed_steps and state.status in (RunStatus.RUNNING,
                                                                 RunStatus.SUSPENDED):
        return decide(state, Rollback(error=cancel_error(reason))), False
    return decide(state, Cancel(reason=reason)), True
