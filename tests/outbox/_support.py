"""Helpers for the outbox tests: realistic run histories, a fake clock, a topic reader."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.domain.events import (
    ErrorInfo,
    Event,
    RunCompleted,
    RunCreated,
    RunFailed,
    RunStarted,
    StepCompleted,
    StepFailed,
)
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, NewEvent, RecordedEvent, StreamAppend
from ledgerflow.outbox import OutboundMessage, Outcome, Publisher, outbox


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def run_history(steps: int = 2, *, fail: bool = False, big_result: int = 0) -> list[Event]:
    """A run's events as the engine writes them: created, started, steps, finished."""
    events: list[Event] = [
        RunCreated(workflow_id="checkout", workflow_version="1", input={"order": 7},
                   tenant_meta={"tenantId": "acme"}),
        RunStarted(worker="worker-1"),
    ]
    events += [StepCompleted(step_id=f"step-{i}", result={"i": i}) for i in range(steps)]
    if fail:
        error = ErrorInfo(type="PaymentDeclined", message="card declined", step_id="pay")
        events += [StepFailed(step_id="pay", attempt=1, error=error, final=True),
                   RunFailed(error=error)]
    else:
        events.append(RunCompleted(result={"ok": True, "blob": "x" * big_result}))
    return events


def append_run(store: EventStore, events: Sequence[Event], *, per_append: int = 1,
               tenant: str = "acme") -> tuple[str, list[RecordedEvent]]:
    """Append a run's events, `per_append` events per transaction; returns (run id, recorded)."""
    run_id = str(uuid.uuid4())
    meta = run_metadata("checkout", "1", tenant, correlation_id=run_id)
    recorded: list[RecordedEvent] = []
    for start in range(0, len(events), per_append):
        chunk = [NewEvent(e, metadata=meta) for e in events[start:start + per_append]]
        recorded += store.append(StreamAppend(run_id, chunk, expected_version=start))
    return run_id, recorded


def outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(outbox).order_by(outbox.c.id)))


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox.c.status, sa.func.count())
                            .group_by(outbox.c.status))
        return {status: int(n) for status, n in rows}


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0,
               what: str = "condition") -> None:
    """Poll `predicate` until true; fail with `what` after a generous deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


class FailingFor:
    """Injected fault: a publisher wrapper that fails every message of one event type.

    Like a serializer that cannot handle that type: dead-letter copies (the stored
    bytes as they are) pass.
    """

    def __init__(self, inner: Publisher, event_type: str) -> None:
        self.inner = inner
        self.event_type = event_type.encode()
        self.active = True

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        poisoned: list[bool] = []
        refused: set[str | None] = set()  # keeps the publisher contract: later rows wait
        for m in messages:
            bad = m.key in refused or (self.active and not m.topic.endswith(".dlq")
                                       and ("event-type", self.event_type) in m.headers)
            if bad:
                refused.add(m.key)
            poisoned.append(bad)
        passed = [m for m, bad in zip(messages, poisoned, strict=True) if not bad]
        results = iter(self.inner.publish(passed) if passed else [])
        return [RuntimeError("serializer refused this event type") if bad else next(results)
                for bad in poisoned]

    def close(self) -> None:
        self.inner.close()


def header(record: Any, name: str) -> str:
    for key, value in record.headers:
        if key == name:
            return str(value.decode())
    raise KeyError(name)
