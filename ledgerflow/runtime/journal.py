"""A run's history as the executor replays it: step records by op id, in order.

Every context operation has an op id: its name, with `#n` appended for the n-th
call of the same name (loops). Ops that leave records (steps, values, sleeps,
tokens, children, parallel branches) are kept in `order`, the order in which they
first appear in the stream; replay must meet them in that order. An agent step's
rounds (`StepSuspended`) are kept in `suspensions` (see `runtime.agent`).

Signals and events are consumed by rule, not by id: the k-th wait for signal N
takes the k-th item of N's list, where the list holds, in stream order, every
`SignalReceived(N)` and every `WaitTimedOut(kind="signal", name=N)`. The executor
appends a timeout only when no unconsumed signal exists (checked under the
stream's expected version), so the rule gives the same answer on every replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.domain import events as ev
from ledgerflow.domain.state import RunState, evolve, initial
from ledgerflow.eventstore.records import RecordedEvent

INPUT_EVENTS = (ev.SignalReceived, ev.EventReceived, ev.TokenResolved, ev.ChildFinished,
                ev.StepResultDiscarded, ev.StreamChunk)
"""Events other parties append to a running run; they never conflict with its journal
(a late step result is appended by the thread of the attempt that timed out, a step's
stream chunks by the thread of its attempt)."""

_ORDERED_WAITS = ("sleep", "token", "child")


def base_metadata(first: dict[str, Any]) -> dict[str, Any]:
    """A run's metadata for every later event: its first event's, minus who and why."""
    return {k: v for k, v in first.items()
            if k not in ("actor", "idempotency_key", "causation_id")}


@dataclass
class Item:
    """One entry of a signal's or event's list: a payload, or a timeout."""

    timed_out: bool
    payload: Any = None


@dataclass
class Journal:
    """Everything replay needs, updated one event at a time."""

    run_id: str
    state: RunState
    created: ev.RunCreated | None = None
    base_metadata: dict[str, Any] = field(default_factory=dict)
    last_event_id: str | None = None
    order: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, ev.StepFailed] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    retry_due: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    waits: dict[str, ev.Waitpoint] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)
    timed_out: set[str] = field(default_factory=set)
    tokens: dict[str, Any] = field(default_factory=dict)
    children: dict[str, str] = field(default_factory=dict)
    child_done: dict[str, ev.ChildFinished] = field(default_factory=dict)
    signals: dict[str, list[Item]] = field(default_factory=dict)
    events: dict[str, list[Item]] = field(default_factory=dict)
    compensated: dict[str, bool] = field(default_factory=dict)
    item_waits: dict[tuple[str, str, int], ev.Waitpoint] = field(default_factory=dict)
    suspensions: dict[str, list[ev.StepSuspended]] = field(default_factory=dict)
    streamed: set[str] = field(default_factory=set)
    step_chunks: dict[tuple[str, int], int] = field(default_factory=dict)
    """(step id, attempt) -> how many chunks that attempt streamed (`runtime.chunks`)."""

    @classmethod
    def build(cls, run_id: str, recorded: Iterable[RecordedEvent]) -> Journal:
        journal = cls(run_id, initial(run_id))
        for rec in recorded:
            journal.add_recorded(rec)
        return journal

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def seeds(self) -> dict[str, Any]:
        return dict(self.created.seed_results) if self.created else {}

    def add_recorded(self, rec: RecordedEvent) -> None:
        if rec.version == 1:
            self.base_metadata = base_metadata(rec.metadata)
        self.last_event_id = rec.event_id
        self.add(rec.event)

    def _first(self, op: str) -> bool:
        """Note op's first record; True if it was new."""
        if op in self._seen:
            return False
        self._seen.add(op)
        self.order.append(op)
        return True

    def __post_init__(self) -> None:
        self._seen: set[str] = set()

    def add(self, event: ev.Event) -> bool:
        """Apply one event; True if it added an op to `order`."""
        self.state = evolve(self.state, event)
        match event:
            case ev.RunCreated():
                self.created = event
            case ev.StepCompleted(step_id=op):
                self.results[op] = event.result
                self.attempts[op] = event.attempt
                return self._first(op)
            case ev.StepFailed(step_id=op):
                self.attempts[op] = event.attempt
                if event.final:
                    self.failures[op] = event
                return self._first(op)
            case ev.StepSuspended(step_id=op):
                self.suspensions.setdefault(op, []).append(event)
                self.attempts[op] = event.attempt
                self.retry_due.pop(op, None)
                return self._first(op)
            case ev.RetryScheduled(step_id=op):
                self.retry_due[op] = event.due_at
            case ev.ValueRecorded(key=op):
                self.values[op] = event.value
                return self._first(op)
            case ev.ChildStarted(step_id=op, child_run_id=child):
                self.children[op] = child
                return self._first(op)
            case ev.RunSuspended(waitpoint=wp) if wp.kind in ("signal", "event"):
                book = self.signals if wp.kind == "signal" else self.events
                self.item_waits[(wp.kind, wp.name, len(book.get(wp.name, [])))] = wp
            case ev.RunSuspended(waitpoint=wp):
                self.waits.setdefault(wp.name, wp)
                if wp.kind in _ORDERED_WAITS:
                    return self._first(wp.name)
            case ev.TimerFired(name=op):
                self.fired.add(op)
                return self._first(op)
            case ev.WaitTimedOut(kind="token", name=op):
                self.timed_out.add(op)
                return self._first(op)
            case ev.StreamChunk(op=str() as op):
                self.streamed.add(op)
                return self._first(op)
            case _:
                self._add_input(event)
        return False

    def _add_input(self, event: ev.Event) -> None:
        match event:
            case ev.WaitTimedOut(kind="signal", name=name):
                self.signals.setdefault(name, []).append(Item(True))
            case ev.WaitTimedOut(kind="event", name=name):
                self.events.setdefault(name, []).append(Item(True))
            case ev.WaitTimedOut(name=op):
                self.timed_out.add(op)
            case ev.SignalReceived(name=name, payload=payload):
                self.signals.setdefault(name, []).append(Item(False, payload))
            case ev.EventReceived(event_type=name, payload=payload):
                self.events.setdefault(name, []).append(Item(False, payload))
            case ev.TokenResolved(token_id=token, payload=payload):
                self.tokens[token] = payload
            case ev.ChildFinished(step_id=op):
                self.child_done[op] = event
            case ev.CompensationCompleted(step_id=op):
                self.compensated[op] = True
            case ev.CompensationFailed(step_id=op):
                self.compensated[op] = False
            case ev.StreamChunk(step_id=str() as step, attempt=int() as attempt):
                key = (step, attempt)
                self.step_chunks[key] = max(self.step_chunks.get(key, 0), event.seq)

    def pending_item(self, kind: str, name: str, index: int) -> Item | None:
        """The `index`-th (0-based) item of a signal's or event's list, if it arrived."""
        items = (self.signals if kind == "signal" else self.events).get(name, [])
        return items[index] if index < len(items) else None
