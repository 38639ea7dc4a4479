"""A broker outage delays rows and dead-letters nothing; abandoned producers end.

The first tests drive the relay with a fake clock and an injected unavailable
broker; the others run against the session's Tansu broker, stopped and started
again on the same port (memory storage: it comes back empty, without topics).
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.producer.sender import Sender
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import KafkaPublisher, OutboundMessage, OutboxWriter, Outcome, Relay
from tests._broker import TansuBroker, read_topic
from tests.outbox._live import event_ids, live_settings, running, trigger_and_complete
from tests.outbox._support import (
    FakeClock,
    append_run,
    header,
    outbox_rows,
    run_history,
    status_counts,
    wait_until,
)


class Broker:
    """Injected fault: a broker that is `down` (kafka-python's timeout for every
    message; `dlq_down`: for dead-letter copies), or refuses the `poison` event type
    on the main topic."""

    def __init__(self, poison: str = "") -> None:
        self.down = self.dlq_down = False
        self.poison = poison.encode()
        self.sent: list[OutboundMessage] = []

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        return [self._one(m) for m in messages]

    def _one(self, m: OutboundMessage) -> Outcome:
        copy = m.topic.endswith(".dlq")
        if self.down or (copy and self.dlq_down):
            unavailable: BaseException = KafkaTimeoutError("not acknowledged within 3s")
            return unavailable
        if not copy and ("event-type", self.poison) in m.headers:
            return ValueError("record rejected")
        self.sent.append(m)
        return None

    def close(self) -> None:
        pass


def _relay_until_idle(relay: Relay) -> None:
    while relay.run_once().claimed:
        pass


def test_an_outage_counts_no_attempt_and_rows_wait_with_a_capped_backoff(
        any_engine: Engine) -> None:
    clock = FakeClock()
    start = clock.now
    _, recorded = append_run(EventStore(any_engine, hooks=[OutboxWriter()], clock=clock),
                             run_history(steps=0))
    broker = Broker()
    broker.down = True
    relay = Relay(any_engine, broker, max_attempts=2, base_delay=1.0, outage_max_delay=30,
                  clock=clock, jitter=lambda: 1.0)
    delays = []
    for _ in range(8):
        assert relay.run_once().waiting == 1  # the run's first row; the others wait on it
        head = outbox_rows(any_engine)[0]
        delays.append((head.next_attempt_at - clock.now).total_seconds())
        clock.now = head.next_attempt_at
    assert delays == [1, 1, 2, 4, 8, 16, 30, 30]  # about as long as it has been failing
    assert {(r.status, r.attempts) for r in outbox_rows(any_engine)} == {("pending", 0)}
    assert head.first_attempt_at == start  # since when it fails, for a doctor to show
    assert head.error_class == "kafka.errors.KafkaTimeoutError" and head.last_error

    broker.down = False
    _relay_until_idle(relay)
    assert [dict(m.headers)["idempotency-key"].decode() for m in broker.sent] == \
        [e.event_id for e in recorded]


def test_a_row_goes_dead_only_once_its_dead_letter_copy_is_out(any_engine: Engine) -> None:
    clock = FakeClock()
    append_run(EventStore(any_engine, hooks=[OutboxWriter()], clock=clock),
               run_history(steps=0, fail=True))
    broker = Broker(poison="RunFailed")
    broker.dlq_down = True  # RunFailed is poison, and its copy cannot go out now
    relay = Relay(any_engine, broker, max_attempts=1, clock=clock, jitter=lambda: 1.0)
    _relay_until_idle(relay)
    poisoned = outbox_rows(any_engine)[-1]
    assert (poisoned.status, poisoned.attempts) == ("pending", 1)
    assert "dead-letter copy not sent yet" in poisoned.last_error

    broker.dlq_down = False  # it fails again, and now its copy goes out
    clock.now = poisoned.next_attempt_at
    _relay_until_idle(relay)
    assert outbox_rows(any_engine)[-1].status == "dead"
    assert [(m.topic, dict(m.headers)["event-type"]) for m in broker.sent[-1:]] == \
        [("ledgerflow.run-events.dlq", b"RunFailed")]


def _network_threads() -> int:
    """Live kafka-python I/O threads: producers' senders, admin clients' loops."""
    return sum(1 for t in threading.enumerate()
               if t.is_alive() and (isinstance(t, Sender) or t.name.startswith("kafka-io-")))


def _failing_for(engine: Engine, seconds: float) -> bool:
    """Some row has been failing for `seconds` (first to last failed attempt)."""
    return any(r.status == "pending" and r.first_attempt_at is not None
               and r.last_attempt_at - r.first_attempt_at >= timedelta(seconds=seconds)
               for r in outbox_rows(engine))


@pytest.mark.slow  # 25-35 s: the broker stays down for several 3-second attempts
def test_broker_outage_longer_than_the_attempts_dead_letters_nothing(
        pg_engine: Engine, pg_url: str, tansu: TansuBroker) -> None:
    settings = live_settings(pg_url, tansu.bootstrap, outbox_max_attempts=2,
                             outbox_publish_timeout=3)
    threads = _network_threads()
    with running(settings) as lf:
        first = trigger_and_complete(lf, 1)
        wait_until(lambda: status_counts(pg_engine) == {"published": 6},
                   what="the first run to be published")

        tansu.stop()
        during = trigger_and_complete(lf, 4)  # runs complete while the broker is down
        # several 3-second attempts fail, more than max_attempts allows poison to
        wait_until(lambda: _failing_for(pg_engine, 9) or "dead" in status_counts(pg_engine),
                   timeout_s=90, what="rows to keep failing while the broker is down")
        assert "dead" not in status_counts(pg_engine)
        waiting = [r for r in outbox_rows(pg_engine) if r.status == "pending"]
        assert all(r.attempts == 0 for r in waiting)  # an outage is not the message's fault
        assert any(r.last_error and r.error_class == "kafka.errors.KafkaTimeoutError"
                   for r in waiting)

        tansu.start()  # same port, empty: the relay creates its topics again
        total = 6 * len(first + during)
        wait_until(lambda: status_counts(pg_engine) == {"published": total}, timeout_s=120,
                   what="every row to be published after the outage")

    wait_until(lambda: _network_threads() <= threads, what="the relay's producers to end")
    expected = event_ids(pg_engine, during)  # the first run went with the old broker
    delivered = read_topic(tansu.bootstrap, settings.topic, len(expected))
    assert sorted(header(r, "idempotency-key") for r in delivered) == sorted(expected)
    assert read_topic(tansu.bootstrap, settings.dlq_topic, 0, timeout_s=1) == []


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """What Python reports as "Exception ignored in ..." (a producer's __del__)."""
    seen: list[Any] = []
    previous, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


@pytest.mark.slow  # about 7 s: three outages, each one 2-second attempt
def test_producer_threads_do_not_pile_up_over_repeated_outages(
        tansu: TansuBroker, unraisable: list[Any]) -> None:
    before = _network_threads()
    publisher = KafkaPublisher(tansu.bootstrap, timeout_s=2)
    message = OutboundMessage("lf-outage-threads", "run-1", b"{}", [])
    alive: list[int] = []
    try:
        for _ in range(3):
            assert publisher.publish([message]) == [None]
            tansu.stop()  # the record below is never acknowledged
            assert publisher.publish([message])[0] is not None
            tansu.start()
            assert publisher.publish([message]) == [None]
            wait_until(lambda: _network_threads() <= before + 1, timeout_s=15,
                       what="the abandoned producer's network thread to end")
            alive.append(_network_threads() - before)
    finally:
        publisher.close()
    assert alive == [1, 1, 1]  # one live producer, whatever happened before
    wait_until(lambda: _network_threads() == before, what="close() to end the producer")
    del publisher
    gc.collect()
    assert [u.exc_value for u in unraisable] == []
