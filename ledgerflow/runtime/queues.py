"""Named queues and their limits: declared in code, changed at run time, audited.

Interface: `Queue` / `RateLimit` (a queue's limits as code declares them), `QueueInfo`
(what `GET /api/queues` lists) and `QueueBook` (the queues of one store: `check`,
`change`, `pause`, `resume`, `list`, `ensure`; `Engine.queues`).

A queue is an event-sourced stream, `queue:<name>`: each change appends `QueueChanged`
(old → new settings; the actor in its metadata, its time in `recorded_at`), and in the
same transaction writes the `queue_limits` row the claim reads (`runtime.limits`) and
its rate slots. The queue "default" always exists (engine migration 3 makes its row).

Queues declared in code (`Queue("payments", concurrency=5)` given to `@workflow(...,
queue=)` or `WorkflowRegistry.add_queue`) are defaults: `ensure` creates the ones the
store does not have yet, and leaves the others as run-time changes left them.

Trigger checks read a cache of the known queues, reloaded when a name is missing or
the cache is older than a second (so is the eager-start check: a run of a queue with
limits is never handed over eagerly; it goes through the claim).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import ConcurrencyError, InvalidRequest, UnknownQueue
from ledgerflow.domain.wire import WireRecord, wire_record
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.records import NewEvent, StreamAppend
from ledgerflow.eventstore.store import Clock, EventStore
from ledgerflow.runtime.limits import epoch, queue_limits, queue_rate_slots
from ledgerflow.runtime.queue import run_queue

DEFAULT_QUEUE = "default"
_LIMITS = ("concurrency", "per_key_concurrency", "rate_limit", "rate_period_seconds", "paused")


def stream_id(name: str) -> str:
    """The stream of queue `name`."""
    return f"queue:{name}"


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` run starts per `period_seconds`, across all workers."""

    limit: int
    period_seconds: float = 1.0


@dataclass(frozen=True)
class Queue:
    """A named queue and its default limits (None: no limit)."""

    name: str
    concurrency: int | None = None
    per_key_concurrency: int | None = None
    rate_limit: RateLimit | None = None
    paused: bool = False

    def settings(self) -> ev.QueueSettings:
        rate = self.rate_limit
        return checked(ev.QueueSettings(
            concurrency=self.concurrency, per_key_concurrency=self.per_key_concurrency,
            rate_limit=None if rate is None else rate.limit,
            rate_period_seconds=None if rate is None else rate.period_seconds,
            paused=self.paused))


def checked(settings: ev.QueueSettings) -> ev.QueueSettings:
    """`settings`, or `InvalidRequest` naming the limit that is not positive."""
    for name in ("concurrency", "per_key_concurrency", "rate_limit", "rate_period_seconds"):
        value = getattr(settings, name)
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise InvalidRequest(f"{name} must be a positive number or null, got {value!r}")
    if (settings.rate_limit is None) != (settings.rate_period_seconds is None):
        raise InvalidRequest("a rate limit needs both limit and periodSeconds")
    return settings


def valid_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 200 or name != name.strip():
        raise InvalidRequest(f"a queue name must be 1 to 200 characters, got {name!r}")
    return name


@wire_record
@dataclass(frozen=True, slots=True)
class QueueInfo(WireRecord):
    """A queue as `GET /api/queues` lists it: its limits (null: none; `rateLimit` is
    `{limit, periodSeconds}`), whether it is paused, and now: `depth` (due runs
    waiting for a worker), `executing` (runs leased to a worker) and the age of the
    oldest due run waiting (null: none)."""

    name: str
    concurrency: int | None
    per_key_concurrency: int | None
    rate_limit: dict[str, Any] | None
    paused: bool
    depth: int
    executing: int
    oldest_waiting_seconds: float | None


class QueueBook:
    """The queues of one store."""

    def __init__(self, store: EventStore, clock: Clock,
                 code: Callable[[], Iterable[Queue]] = tuple) -> None:
        """`code`: the queues declared in code (read again when they change)."""
        self.store, self.clock, self._code = store, clock, code
        self._known: dict[str, ev.QueueSettings] = {}
        self._loaded = -1e9
        self._lock = threading.Lock()
        self._ensured: tuple[Queue, ...] = ()

    # ------------------------------------------------------------------ reading

    def known(self, fresh: bool = False) -> dict[str, ev.QueueSettings]:
        """Every queue's settings (cached up to a second; `fresh`: read now)."""
        if tuple(self._code()) != self._ensured:
            self.ensure()
        with self._lock:
            if fresh or time.monotonic() - self._loaded > 1.0:
                with self.store.engine.begin() as conn:
                    rows: list[Any] = list(
                        conn.execute(sa.select(queue_limits)).mappings().all())
                    if not any(r["name"] == DEFAULT_QUEUE for r in rows):
                        rows = [*rows, _default_row(conn)]
                self._known = {r["name"]: ev.QueueSettings(**{k: r[k] for k in _LIMITS})
                               for r in rows}
                self._loaded = time.monotonic()
            return dict(self._known)

    def check(self, name: str) -> ev.QueueSettings:
        """The settings of queue `name`, or `UnknownQueue` naming those that exist."""
        found = self.known().get(name)
        if found is None:
            found = self.known(fresh=True).get(name)
        if found is None:
            raise UnknownQueue(name, list(self.known()))
        return found

    def unlimited(self, name: str) -> bool:
        """True when a run of queue `name` may start without a claim (no limit, not
        paused, as last known)."""
        found = self.known().get(name)
        return found is not None and found == ev.QueueSettings()

    def list(self) -> list[QueueInfo]:
        """Every queue with its limits and figures, by name."""
        known = self.known(fresh=True)
        now = self.clock()
        with self.store.engine.connect() as conn:
            figures = _figures(conn, now)
        return [info(name, known[name], *figures.get(name, (0, 0, None)))
                for name in sorted(known)]

    # ------------------------------------------------------------------ writing

    def ensure(self) -> None:
        """Create the queues declared in code that the store does not have yet."""
        code = self._ensured = tuple(self._code())
        for queue in code:
            if self.store.stream_version(stream_id(queue.name)) == 0 \
                    and queue.name != DEFAULT_QUEUE:
                with contextlib.suppress(_Exists):  # another process made it meanwhile
                    self._change(queue.name, lambda _old, q=queue: q.settings(), "code",
                                 create=True, only_new=True)
            elif queue.name == DEFAULT_QUEUE and queue.settings() != ev.QueueSettings() \
                    and self.store.stream_version(stream_id(DEFAULT_QUEUE)) == 0:
                self._change(DEFAULT_QUEUE, lambda _old, q=queue: q.settings(), "code")

    def change(self, name: str, changes: dict[str, Any], actor: str | None = None,
               ) -> QueueInfo:
        """Create queue `name` or change the limits `changes` names (`concurrency`,
        `per_key_concurrency`, `rate_limit` (a `RateLimit` or None), `paused`)."""
        valid_name(name)
        unknown = set(changes) - {"concurrency", "per_key_concurrency", "rate_limit", "paused"}
        if unknown:
            raise InvalidRequest(f"unknown queue settings: {', '.join(sorted(unknown))}")

        def apply(old: ev.QueueSettings) -> ev.QueueSettings:
            update = {k: v for k, v in changes.items() if k != "rate_limit"}
            if "rate_limit" in changes:
                rate = changes["rate_limit"]
                update["rate_limit"] = None if rate is None else rate.limit
                update["rate_period_seconds"] = None if rate is None else rate.period_seconds
            return checked(old.model_copy(update=update))

        self._change(name, apply, actor, create=True)
        return next(q for q in self.list() if q.name == name)

    def pause(self, name: str, actor: str | None = None) -> QueueInfo:
        """Hold every run of queue `name` (`UnknownQueue` if there is none)."""
        self.check(name)
        return self.change(name, {"paused": True}, actor)

    def resume(self, name: str, actor: str | None = None) -> QueueInfo:
        """Let the runs of queue `name` be claimed again (`UnknownQueue` if none)."""
        self.check(name)
        return self.change(name, {"paused": False}, actor)

    def _change(self, name: str, apply: Any, actor: str | None, create: bool = False,
                only_new: bool = False) -> None:
        for _ in range(20):
            try:
                with self.store.transaction() as tx:
                    row = tx.conn.execute(sa.select(queue_limits).where(
                        queue_limits.c.name == name)).mappings().first()
                    if row is not None and only_new:
                        raise _Exists()
                    if row is None and not create:
                        raise UnknownQueue(name, list(self.known()))
                    old = None if row is None else ev.QueueSettings(
                        **{k: row[k] for k in _LIMITS})
                    new = apply(old or ev.QueueSettings())
                    version = 0 if row is None else int(row["version"])
                    event = ev.QueueChanged(queue=name, old=old, new=new)
                    tx.append(StreamAppend(stream_id(name), [NewEvent(
                        event, metadata={"actor": actor} if actor else {})], version))
                    _write_limits(tx.conn, name, new, version + 1, row is None, self.clock())
            except ConcurrencyError:
                continue
            with self._lock:
                self._loaded = -1e9
            return
        raise ConcurrencyError(stream_id(name), -1, -1)


class _Exists(Exception):
    """The queue exists already (a code default does not overwrite it)."""


def info(name: str, s: ev.QueueSettings, depth: int, executing: int,
         oldest: float | None) -> QueueInfo:
    rate = None if s.rate_limit is None else {"limit": s.rate_limit,
                                              "periodSeconds": s.rate_period_seconds}
    return QueueInfo(name, s.concurrency, s.per_key_concurrency, rate, s.paused, depth,
                     executing, oldest)


def ensure_default_queue(conn: Connection) -> None:
    """Make the row of the queue "default" if it is missing (engine migration 3 makes
    it; a database whose tables were emptied by hand lacks it)."""
    _default_row(conn)


def _default_row(conn: Connection) -> dict[str, Any]:
    """The row of the queue "default", made if missing (it always exists)."""
    row = {"name": DEFAULT_QUEUE, "executing": 0, "version": 0,
           **{k: getattr(ev.QueueSettings(), k) for k in _LIMITS}}
    conn.execute(backend_for(conn).insert_or_ignore(queue_limits), [row])
    return row


def _write_limits(conn: Connection, name: str, new: ev.QueueSettings, version: int,
                  insert: bool, now: datetime) -> None:
    """The `queue_limits` row and rate slots of `name` as `new` says."""
    values = {k: getattr(new, k) for k in _LIMITS}
    lim, r = queue_limits.c, queue_rate_slots.c
    if insert:
        conn.execute(sa.insert(queue_limits).values(name=name, executing=0, version=version,
                                                    **values))
    else:
        conn.execute(sa.update(queue_limits).where(lim.name == name)
                     .values(version=version, **values))
    # keep the latest starts (so a smaller limit still counts them), pad with free slots
    kept = sorted(conn.execute(sa.select(r.free_at).where(r.queue == name)).scalars(),
                  reverse=True)
    conn.execute(sa.delete(queue_rate_slots).where(r.queue == name))
    if new.rate_limit:
        free = [*kept[:new.rate_limit], *[epoch(now) - 1e6] * new.rate_limit][:new.rate_limit]
        conn.execute(sa.insert(queue_rate_slots),
                     [{"queue": name, "slot": i, "free_at": at} for i, at in enumerate(free)])


def _figures(conn: Connection, now: datetime) -> dict[str, tuple[int, int, float | None]]:
    """Per queue: due runs waiting, runs leased, the oldest waiting due time's age."""
    q = run_queue.c
    leased = sa.and_(q.lease_expires_at.is_not(None), q.lease_expires_at >= now)
    waiting = sa.and_(q.due_at <= now, sa.not_(leased))
    rows = conn.execute(sa.select(
        q.queue, sa.func.count().filter(waiting), sa.func.count().filter(leased),
        sa.func.min(q.due_at).filter(waiting)).group_by(q.queue)).all()
    found: dict[str, tuple[int, int, float | None]] = {}
    for name, depth, executing, oldest in rows:
        if oldest is not None and isinstance(oldest, str):  # SQLite aggregates: text
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)
        age = None if oldest is None else max((now - oldest).total_seconds(), 0.0)
        found[name] = (int(depth), int(executing), age)
    return found
