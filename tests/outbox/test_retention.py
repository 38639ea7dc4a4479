"""Published rows are purged after the retention; nothing else is, and nothing is
sent twice because of it. Both backends, a fake clock, the JSON-lines sink."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import (
    DEAD,
    DISCARDED,
    PENDING,
    PUBLISHED,
    JsonlSinkPublisher,
    OutboxWriter,
    Relay,
    dead_letters,
    discard_dead,
    purge_published,
)
from ledgerflow.settings import Settings
from tests.outbox._support import (
    FailingFor,
    FakeClock,
    append_run,
    outbox_rows,
    run_history,
    status_counts,
    wait_until,
)

WEEK = timedelta(days=7)


def _drain(relay: Relay) -> None:
    while relay.run_once().claimed:
        pass


def _history(engine: Engine, tmp_path: Path, clock: FakeClock) -> tuple[EventStore, Path]:
    """Old history: 2 runs published, 2 failed runs (one dead row kept, one discarded),
    then 8 days pass; a recent run published; a last run not relayed yet (pending)."""
    store = EventStore(engine, hooks=[OutboxWriter()], clock=clock)
    sink = tmp_path / "sink.jsonl"
    relay = Relay(engine, FailingFor(JsonlSinkPublisher(sink), "RunFailed"), max_attempts=1,
                  on_dead="skip", clock=clock)
    for fail in (False, False, True, True):
        append_run(store, run_history(steps=1, fail=fail))
    _drain(relay)
    discard_dead(engine, [dead_letters(engine)[0].id])
    clock.advance(WEEK.total_seconds() + 86400)
    append_run(store, run_history(steps=1))
    _drain(relay)
    append_run(store, run_history(steps=0))
    return store, sink


def test_purge_removes_old_published_rows_only(any_engine: Engine, tmp_path: Path) -> None:
    clock = FakeClock()
    _history(any_engine, tmp_path, clock)
    before = status_counts(any_engine)
    assert before == {PUBLISHED: 2 * 4 + 2 * 5 - 2 + 4, DEAD: 1, DISCARDED: 1, PENDING: 3}

    deleted = purge_published(any_engine, WEEK, clock, batch=3)  # several batches
    assert deleted == 2 * 4 + 2 * 5 - 2  # the old published rows (not the dead/discarded)
    after = status_counts(any_engine)
    assert after == {PUBLISHED: 4, DEAD: 1, DISCARDED: 1, PENDING: 3}
    recent = [r for r in outbox_rows(any_engine) if r.status == PUBLISHED]
    assert all(clock() - r.published_at < WEEK for r in recent)
    assert purge_published(any_engine, WEEK, clock) == 0


def test_nothing_purged_is_sent_again(any_engine: Engine, tmp_path: Path) -> None:
    clock = FakeClock()
    _, sink = _history(any_engine, tmp_path, clock)
    relay = Relay(any_engine, JsonlSinkPublisher(sink), clock=clock, retention=WEEK,
                  purge_every=0)
    assert relay.purge_due() > 0
    _drain(relay)
    sent = [json.loads(line)["headers"]["idempotency-key"]
            for line in sink.read_text().splitlines()]
    assert len(sent) == len(set(sent))  # every event once: purged rows are never re-sent
    assert status_counts(any_engine)[PUBLISHED] == 4 + 3
    assert dead_letters(any_engine)  # the dead row is still there to replay


def test_the_running_relay_purges_on_its_own(any_engine: Engine, tmp_path: Path) -> None:
    clock = FakeClock()
    _, sink = _history(any_engine, tmp_path, clock)
    relay = Relay(any_engine, JsonlSinkPublisher(sink), clock=clock, retention=WEEK,
                  purge_every=3600, idle_wait=0.02)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: status_counts(any_engine) == {PUBLISHED: 7, DEAD: 1, DISCARDED: 1},
                   what="old published rows purged and the pending run published")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert relay.purge_due() == 0  # the next purge waits for `purge_every`


def test_no_retention_keeps_everything(any_engine: Engine, tmp_path: Path) -> None:
    clock = FakeClock()
    _history(any_engine, tmp_path, clock)
    relay = Relay(any_engine, JsonlSinkPublisher(tmp_path / "s"), clock=clock, purge_every=0)
    assert relay.purge_due() == 0
    assert status_counts(any_engine)[PUBLISHED] == 20


def test_retention_setting() -> None:
    assert Settings().outbox_retention() == WEEK
    assert Settings(outbox_retention_hours=0).outbox_retention() is None
    assert Settings(outbox_retention_hours=1.5).outbox_retention() == timedelta(minutes=90)
    with pytest.raises(ValueError, match="outbox_retention_hours"):
        Settings(outbox_retention_hours=-1)
    with pytest.raises(ValueError, match="batch"):
        purge_published(None, WEEK, batch=0)  # type: ignore[arg-type]
