"""The relay against the real broker (Tansu) and real PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore, utcnow
from ledgerflow.outbox import (
    KafkaPublisher,
    OutboundMessage,
    OutboxWriter,
    Outcome,
    Publisher,
    Relay,
    claim,
    dead_letters,
    replay_dead,
)
from tests._broker import read_topic
from tests.outbox._support import (
    append_run,
    header,
    outbox_rows,
    run_history,
    status_counts,
    wait_until,
)


def _topic() -> str:
    return f"lf-outbox-{uuid.uuid4().hex[:10]}"


def _drain(relay: Relay, rounds: int = 100) -> None:
    for _ in range(rounds):
        if relay.run_once().claimed == 0:
            return


def test_claims_are_key_prefixes_and_skip_what_another_relay_holds(
        pg_engine: Engine) -> None:
    store = EventStore(pg_engine, hooks=[OutboxWriter()])
    runs = {append_run(store, run_history(steps=1))[0]: 4 for _ in range(3)}

    with pg_engine.begin() as first, pg_engine.begin() as second:
        held = claim(first, utcnow(), limit=5)  # 3 heads, then 2 followers
        versions: dict[str, list[int]] = defaultdict(list)
        for row in held:
            versions[row.key].append(json.loads(row.payload)["streamVersion"])
        assert set(versions) == set(runs)
        assert len(held) == 5
        assert all(v == list(range(1, len(v) + 1)) for v in versions.values())  # prefixes
        assert claim(second, utcnow(), limit=100) == []  # heads locked, the rest blocked
    with pg_engine.begin() as third:
        assert len(claim(third, utcnow(), limit=100)) == 12  # locks ended with the batch


def test_relay_creates_its_topic_and_publishes_with_headers(pg_engine: Engine,
                                                            kafka_bootstrap: str) -> None:
    topic = _topic()
    store = EventStore(pg_engine, hooks=[OutboxWriter(topic=topic)])
    run_id, recorded = append_run(store, run_history(steps=2), per_append=2)
    publisher = KafkaPublisher(kafka_bootstrap, timeout_s=10)
    try:
        _drain(Relay(pg_engine, publisher))
    finally:
        publisher.close()

    records = read_topic(kafka_bootstrap, topic, len(recorded))
    assert [header(r, "idempotency-key") for r in records] == [e.event_id for e in recorded]
    assert {r.key.decode() for r in records} == {run_id}
    assert [int(header(r, "stream-version")) for r in records] == [1, 2, 3, 4, 5]
    assert header(records[-1], "ce_type") == "ledgerflow.run.RunCompleted"
    assert status_counts(pg_engine) == {"published": 5}
    published = {r.event_id: r.published_at for r in outbox_rows(pg_engine)}
    assert all(at is not None for at in published.values())


def test_oversized_message_goes_dead_others_flow_and_replay_delivers_it(
        pg_engine: Engine, kafka_bootstrap: str) -> None:
    topic = _topic()
    store = EventStore(pg_engine, hooks=[OutboxWriter(topic=topic)])
    poison_run, poison = append_run(store, run_history(steps=0, big_result=60_000))
    healthy = [append_run(store, run_history(steps=1))[1] for _ in range(3)]
    small_limit = KafkaPublisher(kafka_bootstrap, timeout_s=10,
                                 producer_config={"max_request_size": 20_000})
    relay = Relay(pg_engine, small_limit, max_attempts=3, base_delay=0.01, max_delay=0.05)
    try:
        wait_until(lambda: relay.run_once().claimed == 0 and "pending" not in
                   status_counts(pg_engine), what="the poison row to go dead")
    finally:
        small_limit.close()

    dead = dead_letters(pg_engine)
    assert [(d.event_id, d.attempts) for d in dead] == [(poison[-1].event_id, 3)]
    assert dead[0].error_class == "kafka.errors.MessageSizeTooLargeError"
    expected = [e.event_id for run in healthy for e in run] + [e.event_id for e in poison[:-1]]
    delivered = read_topic(kafka_bootstrap, topic, len(expected))
    assert sorted(header(r, "idempotency-key") for r in delivered) == sorted(expected)

    # its copy is as large: refused too, and never sent without its value (a dead
    # letter that says application/json and holds nothing); the row is the record
    assert read_topic(kafka_bootstrap, f"{topic}.dlq", 0, timeout_s=1) == []
    assert "dead-letter copy refused" in (dead[0].last_error or "")

    fixed = KafkaPublisher(kafka_bootstrap, timeout_s=10)  # operator raised the size limit
    try:
        assert replay_dead(pg_engine) == [dead[0].id]
        _drain(Relay(pg_engine, fixed))
    finally:
        fixed.close()
    after = read_topic(kafka_bootstrap, topic, len(expected) + 1)
    assert header(after[-1], "idempotency-key") == poison[-1].event_id
    assert after[-1].key.decode() == poison_run
    assert len(after[-1].value) > 60_000


class _Recording:
    """Remembers which event ids the broker acknowledged through this publisher."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.acked: list[str] = []

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        outcomes = self.inner.publish(messages)
        self.acked += [dict(m.headers)["idempotency-key"].decode()
                       for m, out in zip(messages, outcomes, strict=True) if out is None]
        return outcomes

    def close(self) -> None:
        self.inner.close()


def test_two_relays_never_publish_a_row_twice_and_keep_run_order(
        pg_engine: Engine, kafka_bootstrap: str) -> None:
    topic = _topic()
    store = EventStore(pg_engine, hooks=[OutboxWriter(topic=topic)])
    publishers = [_Recording(KafkaPublisher(kafka_bootstrap, timeout_s=10)) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=Relay(pg_engine, p, batch_size=7, idle_wait=0.01)
                                .run_forever, args=(stop,)) for p in publishers]
    for thread in threads:
        thread.start()
    try:
        appended = [e.event_id for _ in range(25)
                    for e in append_run(store, run_history(steps=3))[1]]
        wait_until(lambda: status_counts(pg_engine) == {"published": len(appended)},
                   what="both relays to publish everything")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for p in publishers:
            p.close()

    first, second = (set(p.acked) for p in publishers)
    assert not first & second
    assert sorted(first | second) == sorted(appended)
    records = read_topic(kafka_bootstrap, topic, len(appended))
    assert sorted(header(r, "idempotency-key") for r in records) == sorted(appended)
    versions: dict[str, list[int]] = defaultdict(list)
    for record in records:
        versions[record.key.decode()].append(int(header(record, "stream-version")))
    assert all(v == list(range(1, 7)) for v in versions.values())
