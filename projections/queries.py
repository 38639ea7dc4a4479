"""Reads for the HTTP API and the CLI: a run, a page of runs, a journal, a history.

The records are the wire shapes, declared once (see `ledgerflow.domain.wire`): the
HTTP API serialises them with `to_wire()` and declares them as its response models;
`Page` is a list. `resolve_run_id` turns what a user typed (a run id, or the unique
prefix of one that a table showed) into the run's id, for the CLI and the API alike.
`list_runs` pages by keyset, newest first, on (created_at, run_id); the cursor is opaque
(url-safe base64 of the last row's key). `tenant_id` restricts any query to one
tenant's runs (what a tenant-bound API token sees).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import Field, PlainSerializer, WithJsonSchema
from sqlalchemy.engine import Connection, Row

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import AmbiguousRunId, InvalidRequest, UnknownRun
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.wire import Timestamp, WireRecord, camel_keys, camel_schema, wire_record
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.eventstore.schema import UTCDateTime
from ledgerflow.eventstore.store import StreamReader
from ledgerflow.projections._runs import fold
from ledgerflow.projections._schema import run_tags, run_views, step_journal

MAX_LIMIT = 500

ErrorJson = Annotated[dict[str, Any], PlainSerializer(camel_keys),
                      WithJsonSchema(camel_schema(ev.ErrorInfo))]
"""A stored `ErrorInfo` (snake_case, as journaled); camelCase keys on the wire."""

WaitpointJson = Annotated[dict[str, Any], PlainSerializer(camel_keys),
                          WithJsonSchema(camel_schema(ev.Waitpoint))]
"""A stored `Waitpoint` (snake_case, as journaled); camelCase keys on the wire."""

Compensation = Literal["compensated", "compensation_failed"]
"""How a failed run's rollback ended (null: nothing was compensated, or not failed)."""

Hidden = Field(exclude=True)
"""A column the record keeps for Python callers that the wire does not show."""


@wire_record
@dataclass(frozen=True, slots=True)
class RunRecord(WireRecord):
    """One row of `run_views`: the run record of the HTTP API (`id` on the wire)."""

    run_id: Annotated[str, Field(serialization_alias="id")]
    workflow_id: str
    workflow_version: str
    status: RunStatus
    input: Any
    result: Any
    error: ErrorJson | None
    waitpoint: WaitpointJson | None
    wake_at: Timestamp | None
    timeout_at: Annotated[datetime | None, Hidden]
    parent_run_id: str | None
    parent_step_id: Annotated[str | None, Hidden]
    children: list[str]
    tags: list[str]
    tenant_id: Annotated[str | None, Hidden]
    tenant_meta: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    version: int
    resumed_from: str | None
    rerun_of: str | None
    compensation: Compensation | None
    queue: str | None
    priority: int

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RunRecord:
        """The record the API showed as `data`; the columns the wire leaves out are
        None, but the tenant (from `tenantMeta.tenantId`)."""
        shown = {k: v for k, v in data.items() if k != "id"}
        meta = data.get("tenantMeta") or {}
        shown.update(run_id=data.get("id"), timeout_at=None, parent_step_id=None,
                     tenant_id=meta.get("tenantId") if isinstance(meta, dict) else None)
        record: RunRecord = cls.__wire_adapter__.validate_python(shown)
        return record

    @classmethod
    def from_row(cls, row: Row[Any]) -> RunRecord:
        return cls.of(row._asdict())

    @classmethod
    def of(cls, columns: dict[str, Any]) -> RunRecord:
        """The record of a `run_views` row given as a column -> value dict."""
        columns["status"] = RunStatus(columns["status"])
        return cls(**columns)


@wire_record
@dataclass(frozen=True, slots=True)
class JournalEntry(WireRecord):
    """One row of `step_journal`: a journal entry of the HTTP API."""

    step_id: str
    status: str
    attempt: int
    result: Any
    error: ErrorJson | None
    started_at: Timestamp | None
    completed_at: Timestamp | None


@wire_record
@dataclass(frozen=True, slots=True)
class HistoryEntry(WireRecord):
    """One event of a run's stream, with who/what caused it (metadata)."""

    event_id: str
    position: int
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: Timestamp

    @classmethod
    def from_recorded(cls, recorded: RecordedEvent) -> HistoryEntry:
        return cls(recorded.event_id, recorded.position, recorded.version, recorded.type,
                   recorded.data, dict(recorded.metadata), recorded.recorded_at)


_RUN_COLUMNS = [run_views.c[field.name] for field in fields(RunRecord)]


def get_run(conn: Connection, run_id: str, *, tenant_id: str | None = None) -> RunRecord | None:
    """The run's record, or None (also None when it belongs to another tenant)."""
    query = sa.select(*_RUN_COLUMNS).where(run_views.c.run_id == run_id)
    if tenant_id is not None:
        query = query.where(run_views.c.tenant_id == tenant_id)
    row = conn.execute(query).first()
    return None if row is None else RunRecord.from_row(row)


MIN_PREFIX = 6
"""The shortest run id prefix `resolve_run_id` looks up (shorter ids must be exact)."""

MAX_CANDIDATES = 10


def resolve_run_id(conn: Connection, run_id: str, *, tenant_id: str | None = None) -> str:
    """The id of the run `run_id` names: a run's whole id, or a prefix (at least
    `MIN_PREFIX` characters) that exactly one run's id starts with. `UnknownRun` when no
    run matches (runs of other tenants do not); `AmbiguousRunId` listing (at most
    `MAX_CANDIDATES` of) the candidates when several do. Both lookups use an index."""
    exact = _run_ids(tenant_id).where(run_views.c.run_id == run_id)
    if conn.execute(exact).first() is not None:
        return run_id
    return _by_prefix(conn, run_id, tenant_id)


def find_run(conn: Connection, run_id: str, *, tenant_id: str | None = None) -> RunRecord:
    """The record of the run `run_id` names, as `resolve_run_id` finds it (one query
    for a whole id)."""
    record = get_run(conn, run_id, tenant_id=tenant_id)
    if record is None:
        record = get_run(conn, _by_prefix(conn, run_id, tenant_id), tenant_id=tenant_id)
    if record is None:  # gone in between (a rebuild's swap)
        raise UnknownRun(run_id)
    return record


def _run_ids(tenant_id: str | None) -> sa.Select[Any]:
    query = sa.select(run_views.c.run_id)
    return query if tenant_id is None else query.where(run_views.c.tenant_id == tenant_id)


def _by_prefix(conn: Connection, prefix: str, tenant_id: str | None) -> str:
    """The one run id that starts with `prefix` (see `resolve_run_id`)."""
    if len(prefix) < MIN_PREFIX:
        raise UnknownRun(prefix)
    matching = _run_ids(tenant_id).where(backend_for(conn).starts_with(run_views.c.run_id,
                                                                      prefix))
    found = list(conn.execute(matching.order_by(run_views.c.run_id)
                              .limit(MAX_CANDIDATES + 1)).scalars())
    if not found:
        raise UnknownRun(prefix)
    if len(found) > 1:
        raise AmbiguousRunId(prefix, found[:MAX_CANDIDATES], len(found) > MAX_CANDIDATES)
    return str(found[0])


def record_from_events(run_id: str, recorded: Sequence[RecordedEvent]) -> RunRecord | None:
    """The run's record as the run-views projection builds it from `recorded`, which
    must start with the run's RunCreated (a trigger's own events); None otherwise.
    Equal to `get_run` right after those events commit (tested), without the read."""
    patch = fold([r for r in recorded if r.stream_id == run_id]).get(run_id)
    if patch is None or not patch.created:
        return None
    return RunRecord.of({**patch.row, "run_id": run_id, "children": list(patch.children)})


FILTERS = ("status", "workflow_id", "tenant_id", "parent_run_id", "resumed_from",
           "rerun_of", "compensation", "queue")
"""The `run_views` columns a list filters on by equality (each but `queue` has an index
that ends with `created_at, run_id`); `tag` filters through `run_tags`."""


def list_runs(
    conn: Connection, *, tag: str | None = None, limit: int = 50, cursor: str | None = None,
    created: Window = (None, None), **filters: str | None,
) -> tuple[list[RunRecord], str | None]:
    """A page of runs, newest first, and the cursor of the next page (None: last page).
    `filters`: column=value for the columns of `FILTERS` (None: not filtered);
    `created`: runs created at or after its first bound and before its second (None:
    open)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    query = list_runs_query(tag=tag, limit=limit + 1, cursor=cursor, created=created,
                            **filters)
    records = [RunRecord.from_row(row) for row in conn.execute(query)]
    if len(records) <= limit:
        return records, None
    last = records[limit - 1]
    return records[:limit], encode_cursor(last.created_at, last.run_id)


Window = tuple[datetime | None, datetime | None]
"""A time range `[since, until)`; None leaves that side open."""


def list_runs_query(
    *, tag: str | None = None, limit: int = 51, cursor: str | None = None,
    created: Window = (None, None), **filters: str | None,
) -> sa.Select[Any]:
    """The SELECT behind `list_runs` (exposed so a test can EXPLAIN it)."""
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise TypeError(f"runs cannot be filtered by {', '.join(unknown)}")
    # With a tag, page on run_tags' (tag, created_at, run_id) index and join the rows.
    key = run_tags if tag is not None else run_views
    query = sa.select(*_RUN_COLUMNS)
    if tag is not None:
        query = query.join(run_tags, run_tags.c.run_id == run_views.c.run_id).where(
            run_tags.c.tag == tag)
    for column, value in filters.items():
        if value is not None:
            query = query.where(run_views.c[column] == value)
    since, until = created
    if since is not None:
        query = query.where(key.c.created_at >= sa.bindparam("since", since, UTCDateTime()))
    if until is not None:
        query = query.where(key.c.created_at < sa.bindparam("until", until, UTCDateTime()))
    if cursor is not None:
        created_at, run_id = decode_cursor(cursor)
        query = query.where(sa.tuple_(key.c.created_at, key.c.run_id) < sa.tuple_(
            sa.bindparam("c_created", created_at, type_=UTCDateTime()),
            sa.bindparam("c_run", run_id, type_=sa.String())))
    return query.order_by(key.c.created_at.desc(), key.c.run_id.desc()).limit(limit)


def encode_cursor(created_at: datetime, run_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, run_id) a cursor stands for; InvalidRequest when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None or not isinstance(run_id, str):
            raise ValueError(cursor)
        return moment, run_id
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise InvalidRequest(f"cursor {cursor!r} is not one this API returned") from None


COUNT_CAP = 1_000
"""Where `count_by_status` stops counting a status (it then answers `COUNT_CAP + 1`)."""


def count_by_status(conn: Connection, *, tenant_id: str | None = None,
                    cap: int = COUNT_CAP) -> dict[str, int]:
    """How many runs are in each status (every status present), counted up to `cap`:
    a status with more answers `cap + 1` ("more than cap"). One query, each status a
    range of the (status, created_at, run_id) index that stops at `cap + 1` entries,
    so the cost stays flat however many runs the store holds. `tenant_id`: that
    tenant's runs only."""
    parts = []
    for status in RunStatus:
        some = sa.select(sa.literal(1).label("one")).where(run_views.c.status == status.value)
        if tenant_id is not None:
            some = some.where(run_views.c.tenant_id == tenant_id)
        parts.append(sa.select(sa.literal(status.value).label("status"),
                               sa.func.count().label("n"))
                     .select_from(some.limit(cap + 1).subquery()))
    return {str(status): int(n) for status, n in conn.execute(sa.union_all(*parts))}


def get_journal(conn: Connection, run_id: str) -> list[JournalEntry]:
    """The run's step journal, in the order the steps first appeared."""
    j = step_journal.c
    rows = conn.execute(
        sa.select(j.step_id, j.status, j.attempt, j.result, j.error, j.started_at,
                  j.completed_at).where(j.run_id == run_id).order_by(j.first_position))
    return [JournalEntry(*row) for row in rows]


def history(store: StreamReader, run_id: str) -> list[HistoryEntry]:
    """The run's audit history: its stream, every event with its metadata and time."""
    return [HistoryEntry.from_recorded(r) for r in store.read_stream(run_id)]


@wire_record
@dataclass(frozen=True, slots=True)
class StreamEntry(WireRecord):
    """One chunk of a run's stream (a `StreamChunk` event), as `GET /api/runs/{id}/stream`
    sends it: `version` is the event's place in the run's stream (the SSE id a reader
    resumes from); `stepId` / `attempt` / `seq` are set for a chunk a step streamed."""

    version: int
    name: str
    chunk: Any
    step_id: str | None
    attempt: int | None
    seq: int
    recorded_at: Timestamp


@dataclass(frozen=True)
class StreamRead:
    """What one read of a run's stream found after a version: its chunks, the last
    version read, and the run's status if the read met the event that ended it."""

    chunks: list[StreamEntry]
    last_version: int
    ended: str | None


_ENDED = {"RunCompleted": "completed", "RunFailed": "failed", "RunCanceled": "canceled"}


def stream_after(store: StreamReader, run_id: str, after: int) -> StreamRead:
    """The chunks of `run_id` stored after stream version `after`."""
    chunks, last, ended = [], after, None
    for rec in store.read_stream(run_id, after + 1):
        last = rec.version
        event = rec.event
        if isinstance(event, ev.StreamChunk):
            chunks.append(StreamEntry(rec.version, event.name, event.chunk, event.step_id,
                                      event.attempt, event.seq, rec.recorded_at))
        elif rec.type in _ENDED:
            ended = _ENDED[rec.type]
    return StreamRead(chunks, last, ended)
