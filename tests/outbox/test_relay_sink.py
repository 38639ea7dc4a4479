"""The relay through the JSON-lines sink (the embedded default), on both backends.

Retries, per-key blocking, dead letters and replay are driven by a fake clock;
the only fault is an injected publisher failure for one event type.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import (
    JsonlSinkPublisher,
    OutboxWriter,
    Relay,
    dead_letters,
    purge_published,
    replay_dead,
    status,
)
from tests.outbox._support import (
    FailingFor,
    FakeClock,
    append_run,
    outbox_rows,
    run_history,
    status_counts,
)


def _sink(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _drain(relay: Relay, rounds: int = 50) -> None:
    for _ in range(rounds):
        if relay.run_once().claimed == 0:
            return


def test_sink_relay_publishes_every_event_in_run_order(any_engine: Engine,
                                                       tmp_path: Path) -> None:
    store = EventStore(any_engine, hooks=[OutboxWriter()])
    runs = [append_run(store, run_history(steps=3)) for _ in range(4)]
    sink = tmp_path / "events.jsonl"

    _drain(Relay(any_engine, JsonlSinkPublisher(sink), batch_size=3))

    lines = _sink(sink)
    assert sorted(line["value"]["eventId"] for line in lines) == \
        sorted(e.event_id for _, recorded in runs for e in recorded)
    versions: dict[str, list[int]] = defaultdict(list)
    for line in lines:
        versions[line["key"]].append(int(line["headers"]["stream-version"]))
    assert all(v == sorted(v) for v in versions.values())
    assert status_counts(any_engine) == {"published": 4 * 6}


def test_failing_row_blocks_its_run_then_dies_and_the_run_moves_on(
        any_engine: Engine, tmp_path: Path) -> None:
    clock = FakeClock()
    store = EventStore(any_engine, hooks=[OutboxWriter()], clock=clock)
    failing_run, _ = append_run(store, run_history(steps=1, fail=True))
    healthy_run, healthy = append_run(store, run_history(steps=1))
    sink = tmp_path / "events.jsonl"
    publisher = FailingFor(JsonlSinkPublisher(sink), "StepFailed")
    relay = Relay(any_engine, publisher, max_attempts=3, on_dead="skip", base_delay=1.0,
                  clock=clock, jitter=lambda: 1.0)

    _drain(relay)
    published = [line["value"]["eventType"] for line in _sink(sink)
                 if line["key"] == failing_run]
    assert published == ["RunCreated", "RunStarted", "StepCompleted"]  # RunFailed waits
    assert sum(1 for line in _sink(sink) if line["key"] == healthy_run) == len(healthy)

    step_failed = next(r for r in outbox_rows(any_engine) if r.key == failing_run
                       and r.status == "pending" and r.attempts == 1)
    assert step_failed.next_attempt_at == clock.now + timedelta(seconds=1)
    assert step_failed.error_class == "RuntimeError"
    assert "serializer refused" in step_failed.last_error

    for seconds in (1, 2):  # back-off doubles: attempt 2 after 1 s, attempt 3 after 2 s
        clock.advance(seconds)
        _drain(relay)
    dead = dead_letters(any_engine)
    assert [(d.event_type, d.attempts) for d in dead] == [("StepFailed", 3)]
    tail = [line for line in _sink(sink) if line["key"] == failing_run]
    assert [line["topic"] for line in tail[-2:]] == \
        ["ledgerflow.run-events.dlq", "ledgerflow.run-events"]
    dlq = tail[-2]["headers"]
    assert dlq["kafka_dlt-original-topic"] == "ledgerflow.run-events"
    assert dlq["kafka_dlt-exception-fqcn"] == "RuntimeError"
    assert dlq["ledgerflow_dlt-attempts"] == "3"
    assert dlq["idempotency-key"] == dead[0].event_id
    assert tail[-1]["value"]["eventType"] == "RunFailed"  # the key moved on past the dead row

    publisher.active = False  # the cause is fixed
    assert replay_dead(any_engine, clock=clock) == [dead[0].id]
    _drain(relay)
    assert _sink(sink)[-1]["value"]["eventId"] == dead[0].event_id
    assert status_counts(any_engine) == {"published": len(outbox_rows(any_engine))}


def test_replay_by_id_and_limit_resets_the_counter(any_engine: Engine,
                                                   tmp_path: Path) -> None:
    store = EventStore(any_engine, hooks=[OutboxWriter()])
    for _ in range(3):
        append_run(store, run_history(steps=0, fail=True))
    relay = Relay(any_engine, FailingFor(JsonlSinkPublisher(tmp_path / "s"), "RunFailed"),
                  max_attempts=1)
    _drain(relay)
    dead = [d.id for d in dead_letters(any_engine)]
    assert len(dead) == 3

    assert replay_dead(any_engine, ids=[dead[2]]) == [dead[2]]
    assert replay_dead(any_engine, limit=1) == [dead[0]]
    replayed = [r for r in outbox_rows(any_engine) if r.id in (dead[0], dead[2])]
    assert {(r.status, r.attempts) for r in replayed} == {("pending", 0)}
    assert [d.id for d in dead_letters(any_engine)] == [dead[1]]


def test_status_reports_counts_and_lag_and_purge_keeps_recent(any_engine: Engine,
                                                             tmp_path: Path) -> None:
    clock = FakeClock()
    store = EventStore(any_engine, hooks=[OutboxWriter()], clock=clock)
    append_run(store, run_history(steps=0))
    relay = Relay(any_engine, JsonlSinkPublisher(tmp_path / "s"), clock=clock)
    _drain(relay)
    clock.advance(3600)
    append_run(store, run_history(steps=0))
    clock.advance(30)

    report = status(any_engine, clock=clock)
    assert (report.pending, report.published, report.dead) == (3, 3, 0)
    assert report.oldest_pending_age_s == 30.0
    assert [(t.topic, t.pending) for t in report.topics] == [("ledgerflow.run-events", 3)]

    assert purge_published(any_engine, timedelta(hours=2), clock=clock) == 0
    assert purge_published(any_engine, timedelta(minutes=30), clock=clock) == 3
    assert status_counts(any_engine) == {"pending": 3}
