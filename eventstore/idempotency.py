"""Idempotency keys for commands: one table (`idempotency_keys`), one module.

A key is scoped (e.g. "trigger", "api:*:POST /api/runs") and bound to a fingerprint
of the request; reusing it with another fingerprint is an `IdempotencyConflict`.

Commands honour a key in their own transaction (`run_once`): the key's row is
claimed first in the transaction that appends the command's events, and the result
to remember is written in it before it commits. There is no moment when the events
are committed and the key is not: a retry after a crash finds either nothing (the
command did not happen; it runs) or the result (it is replayed, nothing appended).
A concurrent duplicate waits on the claimed row (PostgreSQL) or on the database
lock (SQLite), then replays. A command that fails rolls its claim back with it, so
its key can be retried.

`IdempotencyKeys` is the same table in two steps (acquire -> acquired | replay |
in_progress; complete; release), for work that cannot run inside one store
transaction; a key held that way is `IdempotencyInProgress` to a command.

Keys expire (`ttl`, 24 hours by default) unless kept forever (`ttl=None`, as a
trigger's key is: it names its run, as a given run id would).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.domain.errors import IdempotencyConflict, LedgerflowError
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.schema import idempotency_keys as keys
from ledgerflow.eventstore.store import Clock, EventStore, Transaction, utcnow

T = TypeVar("T")

DEFAULT_TTL = timedelta(hours=24)
DEFAULT_LEASE = timedelta(seconds=60)
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
"""`expires_at` of a key kept forever (`ttl=None`)."""


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


class IdempotencyInProgress(LedgerflowError):
    """The key is held by a request that has not finished: retry later."""

    code = "idempotency_in_progress"
    http_status = 409

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"a request with idempotency key {key!r} is still being processed; "
                         "retry later")

    def details(self) -> dict[str, Any]:
        return {"key": self.key}


@dataclass(frozen=True)
class IdempotencyKey(Generic[T]):
    """A command's idempotency key, honoured in the command's own transaction.

    `remember(conn, outcome)` turns the command's outcome into the JSON result kept
    for the key; it runs in the command's transaction, after its writes (so it may
    read them through `conn`), and may raise to refuse (nothing is then written).
    `recall(result)` turns a kept result back into the command's outcome, for a
    replay. `ttl=None` keeps the key forever. `conflict(result)`, when given, makes
    the error for a reuse with another fingerprint from the kept result (None while
    the first request has not finished), e.g. one naming the run the key created;
    when it returns None, `IdempotencyConflict` is raised.
    """

    scope: str
    key: str
    fingerprint: str
    remember: Callable[[Connection, T], Any]
    recall: Callable[[Any], T]
    ttl: timedelta | None = DEFAULT_TTL
    conflict: Callable[[Any], LedgerflowError | None] | None = None


def run_once(store: EventStore, key: IdempotencyKey[T] | None,
             command: Callable[[Transaction], T]) -> T:
    """Run `command` in one store transaction; with a key, at most once per key.

    The key is claimed first in that transaction and its result written in it, after
    the command's writes: both commit, or neither. A key that was used already returns
    `key.recall` of its result, and `command` does not run; with another fingerprint
    it raises `key.conflict`'s error, else `IdempotencyConflict`; held by an
    unfinished two-step caller, `IdempotencyInProgress`. Without a key, `command`
    simply runs in a transaction (which may then go as one statement, see
    `Transaction.append_deferred`).
    """
    with store.transaction() as tx:
        if key is None:
            return command(tx)
        now = store.clock()
        expires = FOREVER if key.ttl is None else now + key.ttl
        try:
            found = _acquire(tx.conn, key.scope, key.key, key.fingerprint, now,
                             now + DEFAULT_LEASE, expires)
        except IdempotencyConflict as error:
            named = None if key.conflict is None else key.conflict(error.kept)
            if named is None:
                raise
            raise named from None
        if isinstance(found, Replay):
            return key.recall(found.result)
        if isinstance(found, InProgress):
            raise IdempotencyInProgress(key.key)
        outcome = command(tx)
        conn = tx.conn  # sends what the command deferred: `remember` sees its writes
        conn.execute(_complete(key.scope, key.key, key.remember(conn, outcome)))
        return outcome


class IdempotencyKeys:
    """The keys in two steps, for work that cannot run in one store transaction."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock = utcnow,
        ttl: timedelta = DEFAULT_TTL,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self.engine, self.clock, self.ttl, self.lease = engine, clock, ttl, lease

    def acquire(self, scope: str, key: str, fingerprint: str) -> Outcome:
        with self.engine.begin() as conn:
            return self.acquire_in(conn, scope, key, fingerprint)

    def acquire_in(self, conn: Connection, scope: str, key: str, fingerprint: str) -> Outcome:
        """`acquire` inside the caller's transaction."""
        now = self.clock()
        return _acquire(conn, scope, key, fingerprint, now, now + self.lease, now + self.ttl)

    def complete(self, scope: str, key: str, result: Any, conn: Connection | None = None) -> None:
        """Remember `result` for the key; pass `conn` to do it in the caller's transaction."""
        if conn is not None:
            conn.execute(_complete(scope, key, result))
            return
        with self.engine.begin() as own:
            own.execute(_complete(scope, key, result))

    def release(self, scope: str, key: str) -> None:
        """Give up an acquired key (the command failed): the next caller may run it."""
        with self.engine.begin() as conn:
            conn.execute(keys.delete().where(
                (keys.c.scope == scope) & (keys.c.key == key) & (keys.c.status == "in_progress")))

    def purge_expired(self) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(keys.delete().where(keys.c.expires_at <= self.clock()))
            return int(result.rowcount)


def _acquire(conn: Connection, scope: str, key: str, fingerprint: str, now: datetime,
             locked_until: datetime, expires_at: datetime) -> Outcome:
    """Claim the key (a new row, or one expired or abandoned by its holder), or say
    what holds it. On PostgreSQL a concurrent claim of the same key waits here until
    the transaction holding it ends."""
    claimed = {"fingerprint": fingerprint, "status": "in_progress", "result": None,
               "locked_until": locked_until, "expires_at": expires_at, "created_at": now}
    backend = backend_for(conn)
    insert = backend.insert_or_ignore(keys).values(scope=scope, key=key, **claimed)
    if conn.execute(insert.returning(keys.c.key)).first() is not None:
        return Acquired()
    where = (keys.c.scope == scope) & (keys.c.key == key)
    row = conn.execute(backend.lock_rows(sa.select(keys).where(where))).mappings().one()
    if row["expires_at"] <= now or (
        row["status"] == "in_progress" and row["locked_until"] <= now
    ):
        conn.execute(keys.update().where(where).values(**claimed))
        return Acquired()
    if row["fingerprint"] != fingerprint:
        raise IdempotencyConflict(key, row["result"])
    if row["status"] == "completed":
        return Replay(row["result"])
    return InProgress()


def _complete(scope: str, key: str, result: Any) -> sa.Update:
    return keys.update().where((keys.c.scope == scope) & (keys.c.key == key)).values(
        status="completed", result=result, locked_until=None)

