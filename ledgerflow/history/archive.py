"""Retention and archival: finished runs past their retention leave the store for
gzip JSON-lines files, and come back from them unchanged.

Interface: `Archiver(store, files, policy)`; `archive()` archives one batch of due
runs (what `ledgerflow archive run` and `serve`'s timer call), `restore(run_id)`
brings one back, `RetentionPolicy` says how long each workflow's finished runs stay.

A run is due when it finished (completed, failed or canceled) longer ago than its
workflow's retention (`@workflow(..., retention=)`, else `LEDGERFLOW_RETENTION_DAYS`;
neither: never). It is left in the store, and reported, while its parent or one of
its children has not finished, while one of its outbox rows is not published yet
(its events still have to leave), or when its stream fails the audit (an archive
keeps only a history whose chain holds).

Order of a batch, so that nothing is ever lost: the runs' streams are read and
verified, written to the archive and made durable (`ArchiveFiles.add`: fsync, then
the manifest's rename); the fault point `archive.written` is passed; then ONE
transaction deletes their events (`Backend.remove_streams`), run views, tags,
journal rows, queue rows and outbox rows. A crash in between leaves the runs in the
store and in the archive; the next batch finds them due again, keeps the archived
copy as it is, and deletes. A restore reads the run's file (checksum checked),
verifies its chain against the head the manifest recorded, and in one transaction
inserts the events exactly as they were (positions and hashes included) and
re-projects the run's views from them; nothing is published again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledgerflow.domain.errors import ArchiveRefused, NotArchived
from ledgerflow.domain.lifecycle import TERMINAL
from ledgerflow.eventstore import EventStore, StoredEvent, utcnow, verify
from ledgerflow.eventstore.database import backend_for
from ledgerflow.history._files import ArchiveFiles
from ledgerflow.outbox._schema import outbox
from ledgerflow.projections import InlineProjections
from ledgerflow.projections._counts import count_batches
from ledgerflow.projections._schema import run_status_counts, run_tags, run_views, step_journal
from ledgerflow.runtime.faults import FaultPoints
from ledgerflow.runtime.queue import run_queue

log = logging.getLogger("ledgerflow.archive")

FINISHED = sorted(status.value for status in TERMINAL)
WRITTEN = "archive.written"
"""Fault point: a batch's file is durable, its rows are not deleted yet."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long finished runs stay: `per_workflow` first, else `default`; None: kept."""

    default: timedelta | None = None
    per_workflow: Mapping[str, timedelta] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.default is not None or bool(self.per_workflow)

    def condition(self, now: datetime) -> sa.ColumnElement[bool] | None:
        """Runs of `run_views` finished before their cutoff (None: retention is off)."""
        views = run_views.c
        parts = [sa.and_(views.workflow_id == name, views.updated_at < now - keep)
                 for name, keep in self.per_workflow.items()]
        if self.default is not None:
            parts.append(sa.and_(views.workflow_id.not_in(list(self.per_workflow)),
                                 views.updated_at < now - self.default))
        if not parts:
            return None
        return sa.and_(views.status.in_(FINISHED), sa.or_(*parts))


@dataclass
class ArchiveReport:
    """What one batch did: runs archived (by file), runs left in the store and why."""

    archived: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    events: int = 0
    last: tuple[datetime, str] | None = None
    """The last due run this batch looked at (finish time, id): where the next starts."""

    @property
    def runs(self) -> int:
        return sum(map(len, self.archived.values()))


@dataclass(frozen=True)
class _Due:
    run_id: str
    workflow_id: str
    finished: datetime
    parent: str | None
    children: list[str]

    @property
    def day(self) -> str:
        return self.finished.date().isoformat()


class Archiver:
    """Archives due runs in batches to `files`, and restores them."""

    def __init__(self, store: EventStore, files: ArchiveFiles, policy: RetentionPolicy, *,
                 clock: Callable[[], datetime] = utcnow, faults: FaultPoints | None = None,
                 batch: int = 200) -> None:
        self.store, self.files, self.policy = store, files, policy
        self.clock, self.batch = clock, batch
        self.faults = faults if faults is not None else FaultPoints()

    def archive(self, after: tuple[datetime, str] | None = None) -> ArchiveReport:
        """Archive one batch of due runs (at most `batch`), those that finished after
        `after` (a finish time and run id: a previous report's `last`)."""
        report = ArchiveReport()
        condition = self.policy.condition(self.clock())
        if condition is None:
            return report
        with self.store.engine.connect() as conn:
            due = _due(conn, condition, self.batch, after)
            kept = _live(conn, due)
        report.kept.update(kept)
        report.last = (due[-1].finished, due[-1].run_id) if due else None
        streams: dict[tuple[str, str], dict[str, list[StoredEvent]]] = {}
        for run in due:
            if run.run_id in kept:
                continue
            rows = self.store.stored_stream(run.run_id)
            verdict = verify(run.run_id, rows)
            if not verdict.verified:
                report.kept[run.run_id] = f"its history fails the audit: {verdict.reason}"
                continue
            streams.setdefault((run.day, run.workflow_id), {})[run.run_id] = rows
        for (day, workflow_id), runs in sorted(streams.items()):
            path = self.files.add(day, workflow_id, runs)
            report.archived[path] = sorted(runs)
            report.events += sum(map(len, runs.values()))
        if report.archived:
            self.faults(WRITTEN)
            self._remove([run_id for ids in report.archived.values() for run_id in ids])
        return report

    def archive_all(self) -> ArchiveReport:
        """Batches until every due run was looked at once."""
        total = ArchiveReport()
        while True:
            report = self.archive(total.last)
            total.kept.update(report.kept)
            total.events += report.events
            for path, ids in report.archived.items():
                total.archived.setdefault(path, []).extend(ids)
            if report.last is None:
                return total
            total.last = report.last

    def run_forever(self, stop: threading.Event, interval: float) -> None:
        """Archive what is due every `interval` seconds until `stop` is set (`serve`)."""
        while not stop.is_set():
            try:
                report = self.archive_all()
                if report.runs:
                    log.info("archived %d runs (%d events)", report.runs, report.events)
            except Exception:
                log.exception("archiving failed; retrying in %.0f s", interval)
            stop.wait(interval)

    def _remove(self, run_ids: Sequence[str]) -> None:
        with self.store.transaction() as tx:
            tx.remove_streams(run_ids)
            conn = tx.conn
            _uncount(conn, run_ids)
            for table in (run_views, run_tags, step_journal, run_queue):
                conn.execute(table.delete().where(table.c.run_id.in_(run_ids)))
            conn.execute(outbox.delete().where(outbox.c.key.in_(run_ids)))

    def restore(self, run_id: str) -> int:
        """Bring `run_id` back from the archive, as it was; how many events."""
        rows = self.files.find(run_id)
        if rows is None:
            raise NotArchived(run_id, self.files.root)
        verdict = verify(run_id, rows)
        head = next((r.head for r in self.files.runs() if r.run_id == run_id), None)
        if not verdict.verified:
            raise ArchiveRefused(run_id, f"its archived history fails the audit: "
                                         f"{verdict.reason}")
        if verdict.head != head:
            raise ArchiveRefused(run_id, "its archived events end at another hash than "
                                         "the manifest recorded (events were removed)")
        with self.store.transaction() as tx:
            if tx.stored_stream(run_id):
                raise ArchiveRefused(run_id, "the run is in the store already")
            tx.restore_events(rows)
            InlineProjections().write(tx.conn, [row.recorded() for row in rows])
        return len(rows)


def _due(conn: Connection, condition: sa.ColumnElement[bool], limit: int,
         after: tuple[datetime, str] | None) -> list[_Due]:
    views = run_views.c
    if after is not None:
        condition = sa.and_(condition, sa.or_(
            views.updated_at > after[0],
            sa.and_(views.updated_at == after[0], views.run_id > after[1])))
    query = (sa.select(views.run_id, views.workflow_id, views.updated_at,
                       views.parent_run_id, views.children)
             .where(condition).order_by(views.updated_at, views.run_id).limit(limit))
    return [_Due(run_id, workflow_id, updated_at, parent, list(children or []))
            for run_id, workflow_id, updated_at, parent, children in conn.execute(query)]


def _live(conn: Connection, due: Sequence[_Due]) -> dict[str, str]:
    """The runs of `due` to keep, and why: a parent or child not finished, outbox rows
    not published."""
    related = {r for run in due for r in ([run.parent] if run.parent else []) + run.children}
    unfinished: dict[str, Any] = {}
    if related:
        views = run_views.c
        unfinished = dict(conn.execute(
            sa.select(views.run_id, views.status).where(
                views.run_id.in_(sorted(related)), views.status.not_in(FINISHED))).all())
    ids = [run.run_id for run in due]
    pending = set(conn.execute(sa.select(outbox.c.key).where(
        outbox.c.key.in_(ids), outbox.c.status != "published")).scalars()) if ids else set()
    kept: dict[str, str] = {}
    for run in due:
        if run.parent in unfinished:
            kept[run.run_id] = f"its parent {run.parent} is {unfinished[run.parent]}"
        elif live := [c for c in run.children if c in unfinished]:
            kept[run.run_id] = f"its child {live[0]} is {unfinished[live[0]]}"
        elif run.run_id in pending:
            kept[run.run_id] = "some of its events are not published yet"
    return kept


def _uncount(conn: Connection, run_ids: Sequence[str]) -> None:
    """Take the removed finished runs out of `run_status_counts` (`projections._counts`)."""
    finished = conn.execute(sa.select(run_views.c.run_id, run_views.c.status).where(
        run_views.c.run_id.in_(run_ids), run_views.c.status.in_(FINISHED))).all()
    backend = backend_for(conn)
    backend.execute_all(conn, count_batches(
        backend, run_status_counts, [(str(r), str(s)) for r, s in finished], step=-1))
