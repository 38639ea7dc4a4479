"""The audit of a run: does its stored history still hash to its chain?

Interface: `audit_run(store, conn, run_id)` -> `AuditReport` (what `GET
/api/runs/{id}/audit` and `ledgerflow audit verify` show); `audit_all` for every stream
in the store, read in bulk. The chain (`eventstore.chain`) finds an event whose content changed, a
version deleted or moved, a hash changed; the run's view adds the version the
stream reached, so events cut from its end are found too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledgerflow.domain.errors import UnknownRun
from ledgerflow.domain.wire import WireRecord, wire_record
from ledgerflow.eventstore import EventStore, verify
from ledgerflow.eventstore.chain import verify_each
from ledgerflow.projections._schema import run_views


@wire_record
@dataclass(frozen=True, slots=True)
class AuditReport(WireRecord):
    """A run's audit: `verified`, how many events were checked, and else the first
    version that does not hold and why; `head` is the hash of its last event."""

    run_id: str
    verified: bool
    events: int
    first_bad_version: int | None = None
    reason: str | None = None
    head: str | None = None


def audit_run(store: EventStore, conn: Connection, run_id: str) -> AuditReport:
    """Check `run_id`'s stream against its chain and the version its view records;
    `UnknownRun` when the store has neither."""
    reached = conn.execute(sa.select(run_views.c.version).where(
        run_views.c.run_id == run_id)).scalar()
    rows = store.stored_stream(run_id)
    if not rows and reached is None:
        raise UnknownRun(run_id)
    verdict = verify(run_id, rows, last_version=reached)
    return AuditReport(run_id, verdict.verified, verdict.events, verdict.first_bad_version,
                       verdict.reason, verdict.head)


def audit_all(store: EventStore, conn: Connection, batch: int = 500,
              ) -> Iterator[AuditReport]:
    """The audit of every stream in the store, by stream id, read in bulk (not run by
    run); a run's stream is also checked against the version its view records."""
    verdicts = verify_each(store.iter_stored())
    while chunk := list(itertools.islice(verdicts, batch)):
        reached = dict(conn.execute(sa.select(run_views.c.run_id, run_views.c.version).where(
            run_views.c.run_id.in_([v.stream_id for v in chunk]))).all())
        for verdict in chunk:
            last = reached.get(verdict.stream_id)
            if verdict.verified and last is not None and verdict.events < last:
                verdict = verify(verdict.stream_id, store.stored_stream(verdict.stream_id),
                                 last_version=last)
            yield AuditReport(verdict.stream_id, verdict.verified, verdict.events,
                              verdict.first_bad_version, verdict.reason, verdict.head)
