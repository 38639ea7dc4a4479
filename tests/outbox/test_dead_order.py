"""A run's order across a dead row: `hold` (the default) keeps it, `skip` lets the run
move on with a gap that `stream-version` shows; replay and discard end a hold.

Through the JSON-lines sink on both backends, with a fake clock; the fault is one
poisoned event (the third of a run of six) that the publisher refuses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore, utcnow
from ledgerflow.outbox import (
    JsonlSinkPublisher,
    OutboundMessage,
    OutboxWriter,
    Outcome,
    Publisher,
    Relay,
    claim,
    dead_letters,
    discard_dead,
    outbox,
    replay_dead,
    status,
)
from tests.outbox._support import FakeClock, append_run, outbox_rows, run_history

POISONED_VERSION = 3


class Poisoned:
    """Injected fault: refuses the messages of the given (run, stream version)s on the
    main topic, as a broker refuses a record it cannot take (their dead-letter
    copies pass). Keeps the publisher contract: later messages of the key wait."""

    def __init__(self, inner: Publisher, poisoned: set[tuple[str, int]]) -> None:
        self.inner = inner
        self.poisoned = poisoned

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        refused: set[str | None] = set()
        bad: list[bool] = []
        for m in messages:
            version = int(dict(m.headers)["stream-version"])
            if m.key in refused or (not m.topic.endswith(".dlq")
                                    and (m.key or "", version) in self.poisoned):
                refused.add(m.key)
                bad.append(True)
            else:
                bad.append(False)
        sent = iter(self.inner.publish([m for m, b in zip(messages, bad, strict=True)
                                        if not b]))
        return [ValueError("record rejected") if b else next(sent) for b in bad]

    def close(self) -> None:
        self.inner.close()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _versions(path: Path, run: str, topic: str = "ledgerflow.run-events") -> list[int]:
    """The stream versions of `run` on `topic`, in the order a consumer reads them."""
    return [int(line["headers"]["stream-version"]) for line in _lines(path)
            if line["key"] == run and line["topic"] == topic]


class _Setup:
    def __init__(self, engine: Engine, sink: Path, on_dead: str) -> None:
        self.clock = FakeClock()
        store = EventStore(engine, hooks=[OutboxWriter()], clock=self.clock)
        self.poisoned_run, _ = append_run(store, run_history(steps=3))  # six events
        self.healthy_run, _ = append_run(store, run_history(steps=3))
        self.publisher = Poisoned(JsonlSinkPublisher(sink),
                                  {(self.poisoned_run, POISONED_VERSION)})
        self.relay = Relay(engine, self.publisher, max_attempts=2, on_dead=on_dead,
                           base_delay=1.0, clock=self.clock, jitter=lambda: 1.0)

    def drain(self) -> None:
        for _ in range(3):  # the first attempt, then the last after the back-off
            while self.relay.run_once().claimed:
                pass
            self.clock.advance(1)


@pytest.mark.parametrize("on_dead", ["hold", "skip"])
def test_a_dead_row_holds_its_run_or_leaves_a_gap(any_engine: Engine, tmp_path: Path,
                                                  on_dead: str) -> None:
    sink = tmp_path / "events.jsonl"
    setup = _Setup(any_engine, sink, on_dead)
    setup.drain()

    dead = dead_letters(any_engine)
    assert [(d.key, d.event_type, d.attempts) for d in dead] == \
        [(setup.poisoned_run, "StepCompleted", 2)]
    assert _versions(sink, setup.healthy_run) == [1, 2, 3, 4, 5, 6]  # other runs flow
    if on_dead == "hold":
        assert _versions(sink, setup.poisoned_run) == [1, 2]  # no gap: the rest waits
        held = [r for r in outbox_rows(any_engine) if r.key == setup.poisoned_run
                and r.status == "pending"]
        assert len(held) == 3 and all(r.attempts == 0 for r in held)
        assert status(any_engine).held == 3
    else:
        # a consumer sees 2 then 4: the stream-version header shows the gap
        assert _versions(sink, setup.poisoned_run) == [1, 2, 4, 5, 6]
    assert _versions(sink, setup.poisoned_run, "ledgerflow.run-events.dlq") == [3]


def test_a_dead_letter_copy_carries_the_original_value_and_headers(
        any_engine: Engine, tmp_path: Path) -> None:
    sink = tmp_path / "events.jsonl"
    setup = _Setup(any_engine, sink, "hold")
    setup.drain()

    row = next(r for r in outbox_rows(any_engine) if r.status == "dead")
    copy = next(line for line in _lines(sink) if line["topic"].endswith(".dlq"))
    assert copy["value"] == json.loads(row.payload)
    assert list(copy["headers"].items())[:len(json.loads(row.headers))] == \
        [tuple(h) for h in json.loads(row.headers)]
    assert copy["headers"]["kafka_dlt-exception-fqcn"] == "ValueError"


def test_replay_under_hold_republishes_the_run_in_stream_order(any_engine: Engine,
                                                               tmp_path: Path) -> None:
    sink = tmp_path / "events.jsonl"
    setup = _Setup(any_engine, sink, "hold")
    setup.drain()

    dead = [d.id for d in dead_letters(any_engine)]
    setup.publisher.poisoned.clear()  # the cause is fixed
    assert replay_dead(any_engine, clock=setup.clock) == dead
    setup.drain()
    assert _versions(sink, setup.poisoned_run) == [1, 2, 3, 4, 5, 6]
    assert status(any_engine).pending == 0


def test_replaying_one_of_two_dead_rows_of_a_run_stops_at_the_other(
        any_engine: Engine, tmp_path: Path) -> None:
    """Two dead rows of one run (made under `skip`), then `hold`: replaying the first
    sends it alone; the second still holds what follows it."""
    sink = tmp_path / "events.jsonl"
    setup = _Setup(any_engine, sink, "skip")
    setup.publisher.poisoned.add((setup.poisoned_run, 5))
    setup.drain()
    first, second = (d.id for d in dead_letters(any_engine))
    assert _versions(sink, setup.poisoned_run) == [1, 2, 4, 6]

    setup.publisher.poisoned.clear()
    hold = Relay(any_engine, setup.publisher, clock=setup.clock)
    assert replay_dead(any_engine, ids=[first], clock=setup.clock) == [first]
    while hold.run_once().claimed:
        pass
    assert _versions(sink, setup.poisoned_run) == [1, 2, 4, 6, 3]
    assert [d.id for d in dead_letters(any_engine)] == [second]


def test_discard_gives_up_a_dead_row_and_its_run_moves_on(any_engine: Engine,
                                                         tmp_path: Path) -> None:
    sink = tmp_path / "events.jsonl"
    setup = _Setup(any_engine, sink, "hold")
    setup.drain()
    dead = dead_letters(any_engine)[0].id

    assert discard_dead(any_engine, [dead, 999_999]) == [dead]
    assert discard_dead(any_engine, [dead]) == []  # no longer dead
    setup.drain()
    assert _versions(sink, setup.poisoned_run) == [1, 2, 4, 5, 6]  # the gap, as asked
    report = status(any_engine)
    assert (report.pending, report.dead, report.discarded) == (0, 0, 1)
    assert replay_dead(any_engine) == []  # a discarded row is not dead: replay leaves it


@pytest.mark.parametrize("on_dead", ["hold", "skip"])
def test_a_batch_stops_at_a_dead_row_after_its_head_under_hold(any_engine: Engine,
                                                               on_dead: str) -> None:
    """A replayed row is the head of its run again while a later row of the run is
    still dead: the batch takes the head and stops at that row (under `hold`)."""
    store = EventStore(any_engine, hooks=[OutboxWriter()])
    append_run(store, run_history(steps=3))
    second = outbox_rows(any_engine)[1].id
    with any_engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == second).values(status="dead"))
    with any_engine.begin() as conn:
        claimed = [json.loads(row.payload)["streamVersion"]
                   for row in claim(conn, utcnow(), limit=10, hold=on_dead == "hold")]
    assert claimed == ([1] if on_dead == "hold" else [1, 3, 4, 5, 6])
