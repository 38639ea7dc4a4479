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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.store import Clock, utcnow
from ledgerflow.outbox._errors import is_poison
from ledgerflow.outbox._publishers import OutboundMessage, Outcome, Publisher
from ledgerflow.outbox._retention import purge_published
from ledgerflow.outbox._schema import DEAD, PENDING, PUBLISHED, outbox

log = logging.getLogger("ledgerflow.outbox.relay")

FaultPoint = Callable[[str], None]
"""Called at named points of a batch ("relay.published"): crash tests stop there."""

PUBLISHED_POINT = "relay.published"


def _no_fault(_name: str) -> None:
    return None


HOLD = "hold"
SKIP = "skip"
ON_DEAD = (HOLD, SKIP)
"""`LEDGERFLOW_OUTBOX_ON_DEAD`: whether a dead row holds the later rows of its key."""


@dataclass(frozen=True, slots=True)
class RelayStats:
    """What one batch did: `retried` rows will be tried again (`waiting` of them
    because the broker was unavailable: they do not count toward `max_attempts`)."""

    claimed: int = 0
    published: int = 0
    retried: int = 0
    dead: int = 0
    waiting: int = 0


_CLAIM_COLUMNS = (outbox.c.id, outbox.c.event_id, outbox.c.topic, outbox.c.key,
                  outbox.c.payload, outbox.c.headers, outbox.c.attempts,
                  outbox.c.first_attempt_at)


def claim(conn: Connection, now: datetime, limit: int, *, hold: bool = True) -> list[Any]:
    """Lock and return up to `limit` due rows, in id order, each key's rows as a prefix.

    Heads: a row is a head if no earlier row of its (topic, key) is still pending,
    nor dead when `hold` (`LEDGERFLOW_OUTBOX_ON_DEAD=hold`: a dead row holds its key
    until it is replayed or discarded; with `skip` its key moves on past it).
    Due heads are locked; a head waiting for its retry blocks its key while other
    keys flow.
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
    heads = list(conn.execute(heads_query(conn, now, limit, hold=hold)))
    if not heads or len(heads) >= limit:
        return heads
    return sorted(heads + _followers(conn, heads, now, limit - len(heads), hold),
                  key=lambda row: row.id)


def heads_query(conn: Connection, now: datetime, limit: int, *,
                hold: bool = True) -> sa.Select[Any]:
    """The SELECT of `claim`'s due heads (exposed so a test can EXPLAIN it)."""
    due_heads = [outbox.c.status == PENDING, outbox.c.next_attempt_at <= now,
                 ~earlier_row(PENDING)]
    if hold:  # a NOT EXISTS apart: PostgreSQL anti-joins the (few) dead rows once
        due_heads.append(~earlier_row(DEAD))
    return backend_for(conn).skip_locked(
        sa.select(*_CLAIM_COLUMNS).where(*due_heads).order_by(outbox.c.id).limit(limit),
        of=outbox)


def earlier_row(status: str) -> sa.Exists:
    """An earlier row of the same (topic, key) as the outer `outbox` row has `status`."""
    earlier = outbox.alias(f"earlier_{status}")
    return sa.exists().where(
        earlier.c.status == status, earlier.c.topic == outbox.c.topic,
        earlier.c.key == outbox.c.key, earlier.c.id < outbox.c.id)


def _followers(conn: Connection, heads: Sequence[Any], now: datetime,
               limit: int, hold: bool) -> list[Any]:
    """The due rows after each head, of its key, stopping at a key's first row not due
    or, under `hold`, at a dead row (after a head when one row of its key was replayed
    alone)."""
    head_ids = {(h.topic, h.key): h.id for h in heads if h.key is not None}
    keys = list(head_ids)
    if not keys:
        return []
    rows = conn.execute(
        sa.select(*_CLAIM_COLUMNS, outbox.c.next_attempt_at)
        .where(outbox.c.status == PENDING, sa.tuple_(outbox.c.topic, outbox.c.key).in_(keys),
               outbox.c.id > min(h.id for h in heads))
        .order_by(outbox.c.topic, outbox.c.key, outbox.c.id).limit(limit + len(heads)))
    walls = _first_dead(conn, keys) if hold else {}
    followers: list[Any] = []
    stopped: set[tuple[str, str]] = set()
    for row in rows:
        key = (row.topic, row.key)
        if row.id <= head_ids[key]:
            continue  # the head itself (the query's id bound is the lowest head's)
        if row.next_attempt_at > now or row.id > walls.get(key, row.id):
            stopped.add(key)
        if key not in stopped:
            followers.append(row)
    return followers[:limit]


def _first_dead(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The id of the first dead row of each of `keys` that has one (dead rows are few:
    found through the status index, apart from the pending rows' partial index)."""
    rows = conn.execute(
        sa.select(outbox.c.topic, outbox.c.key, sa.func.min(outbox.c.id))
        .where(outbox.c.status == DEAD, sa.tuple_(outbox.c.topic, outbox.c.key).in_(keys))
        .group_by(outbox.c.topic, outbox.c.key))
    return {(topic, key): int(first) for topic, key, first in rows}


def to_message(row: Any) -> OutboundMessage:
    """The broker message of an outbox row (its stored payload and headers, as sent)."""
    headers = [(name, text.encode()) for name, text in json.loads(row.headers)]
    return OutboundMessage(row.topic, row.key, row.payload.encode(), headers)


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

    A failure is poison or an outage (see `ledgerflow.outbox._errors`). Poison counts
    toward `max_attempts`: the next attempt after the n-th is due after
    `base_delay * 2**(n-1)` seconds (capped at `max_delay`), with jitter, and the
    `max_attempts`-th makes the row dead: it stays in the table with status `dead`
    and a copy (its value and headers as they were, plus headers saying why) goes to
    `dead_letter_topic` (default: the row's topic + ".dlq"). An outage does not
    count: the row waits (`outage_backoff`) for as long as it lasts, its `last_error`
    and `first_attempt_at` saying since when.

    `on_dead="hold"` (the default): a dead row holds the later rows of its key until
    it is replayed (`replay_dead`) or discarded (`discard_dead`), so a consumer never
    sees a gap in a run's stream versions. `on_dead="skip"`: the later rows flow on.
    """

    def __init__(self, engine: Engine, publisher: Publisher, *, batch_size: int = 500,
                 max_attempts: int = 10, dead_letter_topic: str | None = None,
                 on_dead: str = HOLD, base_delay: float = 1.0, max_delay: float = 300.0,
                 outage_max_delay: float = 30.0, idle_wait: float = 0.05,
                 clock: Clock = utcnow, fault_point: FaultPoint = _no_fault,
                 jitter: Callable[[], float] = random.random,
                 retention: timedelta | None = None, purge_every: float = 60.0) -> None:
        if max_attempts < 1 or batch_size < 1:
            raise ValueError("max_attempts and batch_size must be at least 1")
        if on_dead not in ON_DEAD:
            raise ValueError(f"on_dead must be one of {', '.join(ON_DEAD)}, got {on_dead!r}")
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.dead_letter_topic = dead_letter_topic
        self.hold = on_dead == HOLD
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.outage_max_delay = outage_max_delay
        self.idle_wait = idle_wait
        self.clock = clock
        self.fault_point = fault_point
        self.jitter = jitter
        self.retention = retention
        """Published rows older than this are purged (`outbox._retention`); None: kept."""
        self.purge_every = purge_every
        self._next_purge = 0.0

    def run_once(self) -> RelayStats:
        """Claim one batch, publish it, mark the outcome; all in one transaction."""
        with self.engine.begin() as conn:
            rows = claim(conn, self.clock(), self.batch_size, hold=self.hold)
            if not rows:
                return RelayStats()
            outcomes = self.publisher.publish([to_message(row) for row in rows])
            self.fault_point(PUBLISHED_POINT)
            return self._mark(conn, rows, outcomes)

    def run_forever(self, stop_event: threading.Event) -> None:
        """Relay until `stop_event` is set; waits `idle_wait` when nothing is due.

        A batch that fails (the database went away: its transaction rolled back and
        its rows are due again) is logged, and the relay goes on after a second."""
        while not stop_event.is_set():
            try:
                self.purge_due()
                stats = self.run_once()
            except Exception:
                log.exception("outbox relay batch failed; retrying")
                stop_event.wait(max(self.idle_wait, 1.0))
                continue
            if stats.published == 0:
                stop_event.wait(self.idle_wait)

    def purge_due(self) -> int:
        """Purge published rows past the retention, at most every `purge_every`
        seconds (monotonic); returns how many were deleted."""
        if self.retention is None or time.monotonic() < self._next_purge:
            return 0
        self._next_purge = time.monotonic() + self.purge_every
        return purge_published(self.engine, self.retention, self.clock)

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next attempt after `attempts` poison failures (equal jitter)."""
        return self._jittered(min(self.max_delay, self.base_delay * 2 ** min(attempts - 1, 30)))

    def outage_backoff(self, failing_since: datetime, now: datetime) -> timedelta:
        """Delay before the next attempt while the destination is unavailable.

        About as long as the row has been failing, so attempts space out as a doubling
        back-off does, from `base_delay` up to `outage_max_delay` (and `max_delay`): a
        row is sent soon after the outage ends, however long it lasted."""
        failing = max(0.0, (now - failing_since).total_seconds())
        cap = min(self.outage_max_delay, self.max_delay)
        return self._jittered(min(cap, max(self.base_delay, failing)))

    def _jittered(self, delay: float) -> timedelta:
        return timedelta(seconds=delay / 2 + self.jitter() * delay / 2)

    def _mark(self, conn: Connection, rows: Sequence[Any],
              outcomes: Sequence[Outcome]) -> RelayStats:
        now = self.clock()
        published, failed = _split(rows, outcomes)
        if published:
            conn.execute(_MARK_PUBLISHED, {"ids": published, "now": now})
        if not failed:
            return RelayStats(len(rows), len(published))
        dying = [(row, exc) for row, exc in failed
                 if is_poison(exc) and row.attempts + 1 >= self.max_attempts]
        copy_errors = self._dead_letter(dying, now) if dying else {}
        params = [self._failure(row, exc, now, copy_errors.get(row.id)) for row, exc in failed]
        conn.execute(_MARK_FAILED, params)
        dead = sum(1 for p in params if p["new_status"] == DEAD)
        waiting = sum(1 for _, exc in failed if not is_poison(exc))
        log.warning("outbox: %d of %d messages failed (%d dead, %d waiting for the broker): "
                    "%s", len(failed), len(rows), dead, waiting, error_text(failed[0][1]))
        return RelayStats(len(rows), len(published), len(failed) - dead, dead, waiting)

    def _failure(self, row: Any, exc: BaseException, now: datetime,
                 copy_error: BaseException | None) -> dict[str, Any]:
        """The row's new state after `exc`: waiting, retried, or dead."""
        first = row.first_attempt_at or now
        poison = is_poison(exc)
        attempts = row.attempts + 1 if poison else row.attempts
        error, status = error_text(exc), PENDING
        if not poison:
            due = now + self.outage_backoff(first, now)
        elif attempts < self.max_attempts:
            due = now + self.backoff(attempts)
        elif copy_error is not None and not is_poison(copy_error):
            # dead only once its copy is out: tried again (and copied) when the broker is
            due = now + self.outage_backoff(first, now)
            error += f" (dead-letter copy not sent yet: {error_text(copy_error)})"
        else:
            status, due = DEAD, now
            if copy_error is not None:
                error += (f" (dead-letter copy refused: {error_text(copy_error)}; "
                          "the row stays dead in the outbox table)")
        return {"row_id": row.id, "new_status": status, "new_attempts": attempts,
                "error": error, "cls": error_class(exc), "due": due, "at": now,
                "first": first}

    def _dead_letter(self, dying: Sequence[tuple[Any, BaseException]],
                     now: datetime) -> dict[int, BaseException]:
        """Copy dying rows to their dead-letter topic; the rows whose copy failed, and why.

        A copy carries the original value and headers, or is not sent: one the broker
        refuses (too large, like its original) is not sent altered (without its
        value, say). Its row stays dead in the outbox table, where `dlq list` shows
        it and `dlq replay` sends it once the cause is fixed.
        """
        copies = [dead_letter_copy(row, exc, now, self.dead_letter_topic)
                  for row, exc in dying]
        outcomes = self.publisher.publish(copies)
        return {row.id: out for (row, _), out in zip(dying, outcomes, strict=True)
                if out is not None}


def _split(rows: Sequence[Any], outcomes: Sequence[Outcome]
           ) -> tuple[list[int], list[tuple[Any, BaseException]]]:
    """The ids of the published rows, and the failed rows with their errors.

    A row after a failed row of its key is neither: it stays as it was, to be sent
    again after that row."""
    published: list[int] = []
    failed: list[tuple[Any, BaseException]] = []
    stopped: set[tuple[str, str | None]] = set()
    for row, out in zip(rows, outcomes, strict=True):
        if (row.topic, row.key) in stopped:
            continue
        if out is None:
            published.append(row.id)
        else:
            failed.append((row, out))
            if row.key is not None:
                stopped.add((row.topic, row.key))
    return published, failed


def dead_letter_copy(row: Any, exc: BaseException, now: datetime,
                     topic: str | None = None) -> OutboundMessage:
    """The dead-letter message of a row: its value and headers as sent, plus why it died
    (Spring Kafka's `kafka_dlt-*` headers, and ledgerflow's own)."""
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
    return OutboundMessage(topic or f"{row.topic}.dlq", message.key, message.value,
                           message.headers + [(n, v.encode()) for n, v in why])
