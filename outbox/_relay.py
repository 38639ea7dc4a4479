"""The relay: claims due outbox rows, publishes them, marks them published / retried / dead.

Claim and lease model (read with `claim` below). One batch is one database
transaction held open across the publish: the row locks taken by the claim ARE
the lease. A relay that crashes mid-batch loses its connection, its transaction
rolls back and the rows are due again for whoever claims next (at least once; the
consumer inbox makes the effect exactly once). Rows are marked published in that
same transaction, after the broker acknowledged them, so no relay can claim a row
another relay is publishing in the same attempt window.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.store import Clock, utcnow
from ledgerflow.outbox._publishers import OutboundMessage, Outcome, Publisher
from ledgerflow.outbox._schema import DEAD, PENDING, PUBLISHED, outbox

log = logging.getLogger("ledgerflow.outbox.relay")

FaultPoint = Callable[[str], None]
"""Called at named points of a batch ("relay.published"): crash tests stop there."""

PUBLISHED_POINT = "relay.published"


def _no_fault(_name: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RelayStats:
    """What one batch did."""

    claimed: int = 0
    published: int = 0
    retried: int = 0
    dead: int = 0


_CLAIM_COLUMNS = (outbox.c.id, outbox.c.event_id, outbox.c.topic, outbox.c.key,
                  outbox.c.payload, outbox.c.headers, outbox.c.attempts,
                  outbox.c.first_attempt_at)


def claim(conn: Connection, now: datetime, limit: int) -> list[Any]:
    """Lock and return up to `limit` due rows, in id order, each key's rows as a prefix.

    Heads: a row is a head if no earlier row of its (topic, key) is still pending.
    Due heads are locked; a head waiting for its retry blocks its key while other
    keys flow, and a dead row is no longer pending, so its key moves on.
    Followers: the due rows after a locked head, of the same key, join the batch
    without a lock of their own: no other relay can claim them while their head is
    pending, because they are not heads. So two relays never hold rows of one key
    at once, and a key's rows are sent in order by one producer.

    PostgreSQL: heads are taken `FOR UPDATE SKIP LOCKED`, so relays take disjoint
    batches without waiting; `status = 'pending'` is re-checked on each locked row,
    so a row another relay just published is not taken again. SQLite: the
    transaction began with `BEGIN IMMEDIATE` and holds the write lock; one relay
    at a time.
    """
    earlier = outbox.alias("earlier")
    blocked = sa.exists().where(
        earlier.c.status == PENDING, earlier.c.topic == outbox.c.topic,
        earlier.c.key == outbox.c.key, earlier.c.id < outbox.c.id)
    query = backend_for(conn).skip_locked(
        sa.select(*_CLAIM_COLUMNS)
        .where(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now, ~blocked)
        .order_by(outbox.c.id).limit(limit), of=outbox)
    heads = list(conn.execute(query))
    if not heads or len(heads) >= limit:
        return heads
    return sorted(heads + _followers(conn, heads, now, limit - len(heads)),
                  key=lambda row: row.id)


def _followers(conn: Connection, heads: Sequence[Any], now: datetime,
               limit: int) -> list[Any]:
    """The due rows after each head, of its key, stopping at a key's first row not due."""
    head_ids = {(h.topic, h.key): h.id for h in heads if h.key is not None}
    keys = list(head_ids)
    if not keys:
        return []
    rows = conn.execute(
        sa.select(*_CLAIM_COLUMNS, outbox.c.next_attempt_at)
        .where(outbox.c.status == PENDING, sa.tuple_(outbox.c.topic, outbox.c.key).in_(keys),
               outbox.c.id > min(h.id for h in heads))
        .order_by(outbox.c.topic, outbox.c.key, outbox.c.id).limit(limit + len(heads)))
    followers: list[Any] = []
    stopped: set[tuple[str, str]] = set()
    for row in rows:
        if row.id <= head_ids[(row.topic, row.key)]:
            continue  # the head itself (the query's id bound is the lowest head's)
        if row.next_attempt_at > now:
            stopped.add((row.topic, row.key))
        if (row.topic, row.key) not in stopped:
            followers.append(row)
    return followers[:limit]


def to_message(row: Any, *, value: bytes | None = None) -> OutboundMessage:
    """The broker message of an outbox row (its stored payload and headers, as sent)."""
    headers = [(name, text.encode()) for name, text in json.loads(row.headers)]
    return OutboundMessage(row.topic, row.key,
                           row.payload.encode() if value is None else value, headers)


def error_class(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else \
        f"{cls.__module__}.{cls.__qualname__}"


def error_text(exc: BaseException) -> str:
    return (str(exc) or repr(exc))[:2000]


_MARK_PUBLISHED = (
    outbox.update().where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(status=PUBLISHED, published_at=sa.bindparam("now"),
            last_attempt_at=sa.bindparam("now"),
            first_attempt_at=sa.func.coalesce(outbox.c.first_attempt_at, sa.bindparam("now")))
)
_MARK_FAILED = (
    outbox.update().where(outbox.c.id == sa.bindparam("row_id"))
    .values(status=sa.bindparam("new_status"), attempts=sa.bindparam("new_attempts"),
            next_attempt_at=sa.bindparam("due"), last_error=sa.bindparam("error"),
            error_class=sa.bindparam("cls"), last_attempt_at=sa.bindparam("at"),
            first_attempt_at=sa.bindparam("first"))
)


class Relay:
    """Moves outbox rows to a `Publisher`: batches, retries with back-off, dead letters.

    `max_attempts` failed attempts make a row dead: it stays in the table with
    status `dead` and a copy goes to `dead_letter_topic` (default: the row's topic
    + ".dlq") with headers saying why. The next attempt after the n-th failure is
    due after `base_delay * 2**(n-1)` seconds (capped at `max_delay`), with jitter.
    """

    def __init__(self, engine: Engine, publisher: Publisher, *, batch_size: int = 500,
                 max_attempts: int = 10, dead_letter_topic: str | None = None,
                 base_delay: float = 1.0, max_delay: float = 300.0, idle_wait: float = 0.05,
                 clock: Clock = utcnow, fault_point: FaultPoint = _no_fault,
                 jitter: Callable[[], float] = random.random) -> None:
        if max_attempts < 1 or batch_size < 1:
            raise ValueError("max_attempts and batch_size must be at least 1")
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.dead_letter_topic = dead_letter_topic
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.idle_wait = idle_wait
        self.clock = clock
        self.fault_point = fault_point
        self.jitter = jitter

    def run_once(self) -> RelayStats:
        """Claim one batch, publish it, mark the outcome; all in one transaction."""
        with self.engine.begin() as conn:
            rows = claim(conn, self.clock(), self.batch_size)
            if not rows:
                return RelayStats()
            outcomes = self.publisher.publish([to_message(row) for row in rows])
            self.fault_point(PUBLISHED_POINT)
            return self._mark(conn, rows, outcomes)

    def run_forever(self, stop_event: threading.Event) -> None:
        """Relay until `stop_event` is set; waits `idle_wait` when nothing is due."""
        while not stop_event.is_set():
            try:
                stats = self.run_once()
            except Exception:
                log.exception("outbox relay batch failed; retrying")
                stop_event.wait(max(self.idle_wait, 1.0))
                continue
            if stats.published == 0:
                stop_event.wait(self.idle_wait)

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next attempt after `attempts` failures (equal jitter)."""
        delay = min(self.max_delay, self.base_delay * 2 ** min(attempts - 1, 30))
        return timedelta(seconds=delay / 2 + self.jitter() * delay / 2)

    def _mark(self, conn: Connection, rows: Sequence[Any],
              outcomes: Sequence[Outcome]) -> RelayStats:
        now = self.clock()
        published: list[int] = []
        failed: list[tuple[Any, BaseException]] = []
        stopped: set[tuple[str, str | None]] = set()
        for row, out in zip(rows, outcomes, strict=True):
            if (row.topic, row.key) in stopped:
                # after a failed row of its key: untouched, sent again after that row
                continue
            if out is None:
                published.append(row.id)
            else:
                failed.append((row, out))
                if row.key is not None:
                    stopped.add((row.topic, row.key))
        if published:
            conn.execute(_MARK_PUBLISHED, {"ids": published, "now": now})
        dead = [(row, out) for row, out in failed if row.attempts + 1 >= self.max_attempts]
        dlq_errors = self._dead_letter(dead, now) if dead else {}
        params = [self._failure(row, out, now, dlq_errors.get(row.id)) for row, out in failed]
        if params:
            conn.execute(_MARK_FAILED, params)
            log.warning("outbox: %d of %d messages failed (%d dead): %s", len(failed),
                        len(rows), len(dead), error_text(failed[0][1]))
        return RelayStats(len(rows), len(published), len(failed) - len(dead), len(dead))

    def _failure(self, row: Any, exc: BaseException, now: datetime,
                 dlq_error: str | None) -> dict[str, Any]:
        attempts = row.attempts + 1
        is_dead = attempts >= self.max_attempts
        error = error_text(exc)
        if dlq_error:
            error += f" (dead-letter copy failed: {dlq_error})"
        return {"row_id": row.id, "new_status": DEAD if is_dead else PENDING,
                "new_attempts": attempts, "error": error, "cls": error_class(exc),
                "due": now if is_dead else now + self.backoff(attempts), "at": now,
                "first": row.first_attempt_at or now}

    def _dead_letter(self, dead: Sequence[tuple[Any, BaseException]],
                     now: datetime) -> dict[int, str]:
        """Copy dead rows to their dead-letter topic; returns the rows whose copy failed.

        A copy the broker refuses (e.g. too large) is sent again without its value,
        so the dead letter and its headers still arrive.
        """
        copies = [self._dead_letter_message(row, exc, now) for row, exc in dead]
        outcomes = self.publisher.publish(copies)
        retry = [i for i, out in enumerate(outcomes) if out is not None]
        if retry:
            bare = [_without_value(copies[i], outcomes[i]) for i in retry]
            for i, out in zip(retry, self.publisher.publish(bare), strict=True):
                outcomes[i] = out
        return {row.id: error_text(out) for (row, _), out in zip(dead, outcomes, strict=True)
                if out is not None}

    def _dead_letter_message(self, row: Any, exc: BaseException,
                             now: datetime) -> OutboundMessage:
        message = to_message(row)
        first = row.first_attempt_at or now
        why = [
            ("kafka_dlt-original-topic", row.topic),
            ("kafka_dlt-exception-fqcn", error_class(exc)),
            ("kafka_dlt-exception-message", error_text(exc)),
            ("ledgerflow_dlt-attempts", str(row.attempts + 1)),
            ("ledgerflow_dlt-first-attempt-at", first.isoformat()),
            ("ledgerflow_dlt-last-attempt-at", now.isoformat()),
            ("ledgerflow_dlt-outbox-id", str(row.id)),
        ]
        topic = self.dead_letter_topic or f"{row.topic}.dlq"
        return OutboundMessage(topic, message.key, message.value,
                               message.headers + [(n, v.encode()) for n, v in why])


def _without_value(message: OutboundMessage, why: Outcome) -> OutboundMessage:
    note = ("ledgerflow_dlt-value-omitted", error_text(why or Exception()).encode())
    return OutboundMessage(message.topic, message.key, b"", [*message.headers, note])
