"""Idempotency keys for commands: acquire -> acquired | replay(result) | in_progress.

A key is scoped (e.g. "trigger", "api:POST /api/runs") and bound to a fingerprint
of the request; reusing it with another fingerprint is an `IdempotencyConflict`.
`complete` may run inside the caller's append transaction, so the command's
effect and its remembered result commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.domain.errors import IdempotencyConflict
from ledgerflow.eventstore.database import is_postgres
from ledgerflow.eventstore.schema import idempotency_keys as keys
from ledgerflow.eventstore.store import Clock, utcnow


@dataclass(frozen=True)
class Acquired:
    """The caller owns the key and must `complete` or `release` it."""


@dataclass(frozen=True)
class Replay:
    """The command already ran; here is its result."""

    result: Any


@dataclass(frozen=True)
class InProgress:
    """Another caller holds the key and has not finished."""


Outcome = Acquired | Replay | InProgress


class IdempotencyKeys:
    """Idempotency keys stored next to the events."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock = utcnow,
        ttl: timedelta = timedelta(hours=24),
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.engine, self.clock, self.ttl, self.lease = engine, clock, ttl, lease

    def acquire(self, scope: str, key: str, fingerprint: str) -> Outcome:
        with self.engine.begin() as conn:
            return self.acquire_in(conn, scope, key, fingerprint)

    def acquire_in(self, conn: Connection, scope: str, key: str, fingerprint: str) -> Outcome:
        """`acquire` inside the caller's transaction."""
        now = self.clock()
        insert = _insert_ignore(conn).values(
            scope=scope, key=key, fingerprint=fingerprint, status="in_progress",
            result=None, locked_until=now + self.lease, expires_at=now + self.ttl,
            created_at=now,
        )
        if conn.execute(insert.returning(keys.c.key)).first() is not None:
            return Acquired()
        where = (keys.c.scope == scope) & (keys.c.key == key)
        select = sa.select(keys).where(where)
        if is_postgres(conn):
            select = select.with_for_update()
        row = conn.execute(select).mappings().one()
        if row["expires_at"] <= now or (
            row["status"] == "in_progress" and row["locked_until"] <= now
        ):
            conn.execute(keys.update().where(where).values(
                fingerprint=fingerprint, status="in_progress", result=None,
                locked_until=now + self.lease, expires_at=now + self.ttl, created_at=now))
            return Acquired()
        if row["fingerprint"] != fingerprint:
            raise IdempotencyConflict(key)
        if row["status"] == "completed":
            return Replay(row["result"])
        return InProgress()

    def complete(self, scope: str, key: str, result: Any, conn: Connection | None = None) -> None:
        """Remember `result` for the key; pass `conn` to do it in the caller's transaction."""
        stmt = keys.update().where((keys.c.scope == scope) & (keys.c.key == key)).values(
            status="completed", result=result, locked_until=None)
        if conn is not None:
            conn.execute(stmt)
            return
        with self.engine.begin() as own:
            own.execute(stmt)

    def release(self, scope: str, key: str) -> None:
        """Give up an acquired key (the command failed): the next caller may run it."""
        with self.engine.begin() as conn:
            conn.execute(keys.delete().where(
                (keys.c.scope == scope) & (keys.c.key == key) & (keys.c.status == "in_progress")))

    def purge_expired(self) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(keys.delete().where(keys.c.expires_at <= self.clock()))
            return int(result.rowcount)


def _insert_ignore(conn: Connection) -> Any:
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(keys).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(keys).on_conflict_do_nothing()
