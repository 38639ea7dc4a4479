"""Operating the outbox: status counts, the dead-letter list, replay, discard and purge."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.domain.wire import Timestamp, WireRecord, wire_record
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.store import Clock, utcnow
from ledgerflow.outbox._relay import earlier_row
from ledgerflow.outbox._schema import DEAD, DISCARDED, PENDING, PUBLISHED, outbox


@dataclass(frozen=True, slots=True)
class TopicLag:
    """Pending rows of one topic and the age of the oldest."""

    topic: str
    pending: int
    oldest_pending_age_s: float | None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """Counts by status, the oldest pending row's age, and lag per topic."""

    pending: int
    published: int
    dead: int
    oldest_pending_age_s: float | None
    topics: list[TopicLag]
    discarded: int = 0
    held: int = 0
    """Pending rows behind a dead row of their key (held there under `on_dead=hold`)."""

    def as_dict(self) -> dict[str, Any]:
        return {"pending": self.pending, "published": self.published, "dead": self.dead,
                "discarded": self.discarded, "held": self.held,
                "oldestPendingAgeSeconds": self.oldest_pending_age_s,
                "topics": [{"topic": t.topic, "pending": t.pending,
                            "oldestPendingAgeSeconds": t.oldest_pending_age_s}
                           for t in self.topics]}


@wire_record
@dataclass(frozen=True, slots=True)
class DeadLetter(WireRecord):
    """A dead outbox row: what it was and why it died (its wire shape: `to_wire()`)."""

    id: int
    event_id: str
    topic: str
    key: str | None
    event_type: str | None
    attempts: int
    error_class: str | None
    last_error: str | None
    first_attempt_at: Timestamp | None
    last_attempt_at: Timestamp | None
    created_at: Timestamp


def status(engine: Engine, clock: Clock = utcnow) -> OutboxStatus:
    """Counts by status and, per topic, how many rows wait and since when."""
    now = clock()
    with engine.connect() as conn:
        counts: dict[str, int] = dict(conn.execute(
            sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)).all())
        lag = conn.execute(
            sa.select(outbox.c.topic, sa.func.count(), sa.func.min(outbox.c.created_at))
            .where(outbox.c.status == PENDING).group_by(outbox.c.topic)
            .order_by(outbox.c.topic)).all()
        held = _held(conn) if counts.get(DEAD) else 0
    topics = [TopicLag(topic, int(n), _age(now, oldest)) for topic, n, oldest in lag]
    ages = [t.oldest_pending_age_s for t in topics if t.oldest_pending_age_s is not None]
    return OutboxStatus(int(counts.get(PENDING, 0)), int(counts.get(PUBLISHED, 0)),
                        int(counts.get(DEAD, 0)), max(ages) if ages else None, topics,
                        int(counts.get(DISCARDED, 0)), held)


def _held(conn: Connection) -> int:
    """Pending rows behind a dead row of their key (held there under `on_dead=hold`)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
        outbox.c.status == PENDING, earlier_row(DEAD))).scalar_one())


def _age(now: datetime, oldest: Any) -> float | None:
    if oldest is None:
        return None
    if isinstance(oldest, str):  # SQLite aggregates skip the column's type
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age: float = (now - oldest).total_seconds()
    return max(0.0, age)


def dead_letters(engine: Engine, limit: int = 100) -> list[DeadLetter]:
    """Dead rows, oldest first."""
    query = (sa.select(outbox.c.id, outbox.c.event_id, outbox.c.topic, outbox.c.key,
                       outbox.c.headers, outbox.c.attempts, outbox.c.error_class,
                       outbox.c.last_error, outbox.c.first_attempt_at,
                       outbox.c.last_attempt_at, outbox.c.created_at)
             .where(outbox.c.status == DEAD).order_by(outbox.c.id).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [DeadLetter(r.id, r.event_id, r.topic, r.key, dict(json.loads(r.headers))
                       .get("event-type"), r.attempts, r.error_class, r.last_error,
                       r.first_attempt_at, r.last_attempt_at, r.created_at) for r in rows]


def delivery(conn: Connection, topic: str, event_ids: Sequence[str]) -> dict[str, str]:
    """Where each of `event_ids` stands in the outbox for `topic`: event id -> status
    (pending | published | dead | discarded); an event with no row (purged once
    published, or never routed there) is left out. One lookup on the (topic, event_id)
    unique index, so a run's page costs the same however large the outbox grows."""
    if not event_ids:
        return {}
    query = sa.select(outbox.c.event_id, outbox.c.status).where(
        outbox.c.topic == topic, backend_for(conn).one_of(outbox.c.event_id, event_ids))
    return {str(event_id): str(status) for event_id, status in conn.execute(query)}


def replay_dead(engine: Engine, ids: Sequence[int] = (), limit: int | None = None,
                clock: Clock = utcnow) -> list[int]:
    """Put dead rows back to pending, due now, with a fresh retry counter.

    `ids` picks rows; otherwise the oldest `limit` dead rows (all when None).
    Returns the ids replayed. The error of the last attempt is kept for reference.
    A replayed row is the first of its key again, so the rows it held follow it, in
    stream order.
    """
    return _change_dead(engine, ids, limit, status=PENDING, attempts=0,
                        next_attempt_at=clock(), first_attempt_at=None, last_attempt_at=None)


def discard_dead(engine: Engine, ids: Sequence[int]) -> list[int]:
    """Give up dead rows: status `discarded`, never sent, and their key moves on.

    Under `LEDGERFLOW_OUTBOX_ON_DEAD=hold` the rows a dead row held flow once it is
    discarded; the consumer then sees a gap in that run's `stream-version`s, as it
    asked. Only the given `ids` (there is no "all"); returns the ids discarded. The
    event itself stays in the event store.
    """
    if not ids:
        return []
    return _change_dead(engine, ids, None, status=DISCARDED)


def _change_dead(engine: Engine, ids: Sequence[int], limit: int | None,
                 **values: Any) -> list[int]:
    """Update the chosen dead rows (`ids`, else the oldest `limit`, else all); their ids."""
    where = [outbox.c.status == DEAD]
    if ids:
        where.append(outbox.c.id.in_(list(ids)))
    pick = sa.select(outbox.c.id).where(*where).order_by(outbox.c.id)
    if limit is not None:
        pick = pick.limit(limit)
    with engine.begin() as conn:
        chosen = [int(i) for i in conn.execute(pick).scalars()]
        if chosen:
            conn.execute(outbox.update().where(outbox.c.id.in_(chosen),
                                               outbox.c.status == DEAD).values(**values))
    return chosen
