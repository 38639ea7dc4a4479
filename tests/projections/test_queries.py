"""Queries for the API: run record, filtered keyset pages, journal, audit history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import InvalidRequest
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend
from ledgerflow.projections import COMPENSATE_SUFFIX
from ledgerflow.projections._schema import run_tags, run_views
from ledgerflow.projections.queries import (
    encode_cursor,
    get_journal,
    get_run,
    history,
    list_runs,
    list_runs_query,
)

ERR = ev.ErrorInfo(type="ValueError", message="card declined", step_id="charge")


def _create(store: EventStore, *, tenant: str = "acme", tags: tuple[str, ...] = (),
            workflow: str = "checkout", parent: str | None = None) -> str:
    run_id = str(uuid.uuid4())
    created = ev.RunCreated(workflow_id=workflow, workflow_version="2", input={"x": 1},
                            tenant_meta={"tenantId": tenant}, tags=list(tags),
                            parent_run_id=parent)
    store.append(StreamAppend(run_id, [NewEvent(created, metadata=run_metadata(
        workflow, "2", tenant, actor="alice", correlation_id="corr-1",
        idempotency_key=f"key-{run_id}"))], expected_version=0))
    return run_id


def _add(store: EventStore, run_id: str, *events: ev.Event, causation: str | None = None) -> None:
    meta = run_metadata("checkout", "2", "acme", actor="worker-1", causation_id=causation)
    store.append(StreamAppend(run_id, [NewEvent(e, metadata=meta) for e in events]))


def test_run_record_follows_the_lifecycle(store: EventStore) -> None:
    parent = _create(store, tags=("vip",))
    child = _create(store, parent=parent, workflow="reminder")
    wake = datetime(2030, 1, 1, tzinfo=UTC)
    _add(store, parent, ev.RunStarted(),
         ev.ChildStarted(step_id="remind", child_run_id=child, workflow_id="reminder"))
    _add(store, parent, ev.RunSuspended(waitpoint=ev.Waitpoint(
        kind="sleep", name="cool-off", wake_at=wake, timeout_at=wake + timedelta(hours=1))))
    with store.engine.connect() as conn:
        record = get_run(conn, parent)
    assert record is not None
    wire = record.to_wire()
    assert wire["status"] == "suspended"
    assert wire["wakeAt"] == wake.isoformat()
    assert wire["waitpoint"]["kind"] == "sleep" and wire["waitpoint"]["timeoutAt"] is not None
    assert wire["children"] == [child] and wire["tags"] == ["vip"]
    assert wire["tenantMeta"] == {"tenantId": "acme"} and wire["version"] == 4
    assert set(wire) == {"id", "workflowId", "workflowVersion", "status", "input", "result",
                         "error", "waitpoint", "wakeAt", "parentRunId", "children", "tags",
                         "tenantMeta", "createdAt", "updatedAt", "version",
                         "resumedFrom", "rerunOf", "compensation", "queue", "priority"}
    _add(store, parent, ev.RunWoken(reason="timer"), ev.RunCompleted(result={"ok": True}))
    with store.engine.connect() as conn:
        done = get_run(conn, parent)
        assert get_run(conn, parent, tenant_id="globex") is None
        assert get_run(conn, str(uuid.uuid4())) is None
        kid = get_run(conn, child)
    assert done is not None and kid is not None
    assert (done.status, done.result, done.waitpoint, done.wake_at) == (
        "completed", {"ok": True}, None, None)
    assert done.created_at < done.updated_at
    assert kid.to_wire()["parentRunId"] == parent


def test_journal_retries_failures_and_compensation(store: EventStore) -> None:
    run_id = _create(store)
    _add(store, run_id, ev.RunStarted(), ev.StepCompleted(step_id="reserve", result=7))
    _add(store, run_id, ev.StepFailed(step_id="charge", attempt=1, error=ERR))
    _add(store, run_id, ev.RetryScheduled(step_id="charge", attempt=2,
                                          due_at=datetime(2030, 1, 1, tzinfo=UTC)))
    with store.engine.connect() as conn:
        retrying = {e.step_id: e for e in get_journal(conn, run_id)}["charge"]
    assert (retrying.status, retrying.attempt, retrying.error) == (
        "retrying", 2, ERR.model_dump(mode="json"))
    _add(store, run_id, ev.StepFailed(step_id="charge", attempt=2, error=ERR, final=True),
         ev.RunCompensating(error=ERR), ev.CompensationCompleted(step_id="reserve"),
         ev.RunFailed(error=ERR, compensation="completed"))
    with store.engine.connect() as conn:
        journal = [e.to_wire() for e in get_journal(conn, run_id)]
        record = get_run(conn, run_id)
    assert [(e["stepId"], e["status"], e["attempt"]) for e in journal] == [
        ("reserve", "completed", 1), ("charge", "failed", 2),
        ("reserve" + COMPENSATE_SUFFIX, "completed", 1)]
    assert journal[1]["error"]["stepId"] == "charge" and journal[1]["completedAt"]
    assert record is not None and record.status == "failed"
    assert record.to_wire()["error"]["message"] == "card declined"


def test_a_later_success_overwrites_a_failed_attempt(store: EventStore) -> None:
    run_id = _create(store)
    _add(store, run_id, ev.RunStarted(), ev.StepFailed(step_id="s", attempt=1, error=ERR))
    _add(store, run_id, ev.StepCompleted(step_id="s", attempt=2, result="ok"))
    with store.engine.connect() as conn:
        [entry] = get_journal(conn, run_id)
    assert (entry.status, entry.attempt, entry.result, entry.error) == ("completed", 2, "ok",
                                                                         None)


def test_unknown_event_types_only_move_version(store: EventStore) -> None:
    run_id = _create(store)
    _add(store, run_id, ev.SignalReceived(name="go"), ev.ValueRecorded(key="k", value=1))
    with store.engine.connect() as conn:
        record = get_run(conn, run_id)
        assert get_journal(conn, run_id) == []
    assert record is not None and (record.status, record.version) == ("pending", 3)


def test_list_filters_and_pages_newest_first(store: EventStore) -> None:
    parent = _create(store)
    made = [_create(store, tenant="acme" if i % 2 else "globex",
                    tags=("vip",) if i % 3 == 0 else (), parent=parent if i < 4 else None)
            for i in range(9)]
    # Several runs created in one append share created_at: the cursor breaks the tie.
    tied = [str(uuid.uuid4()) for _ in range(3)]
    store.append(*[StreamAppend(r, [NewEvent(ev.RunCreated(
        workflow_id="refund", workflow_version="1", tenant_meta={"tenantId": "acme"}))])
        for r in tied])
    _add(store, made[0], ev.RunStarted())
    everyone = [parent, *made, *tied]
    with store.engine.connect() as conn:
        pages: list[str] = []
        cursor: str | None = None
        while True:
            page, cursor = list_runs(conn, limit=2, cursor=cursor)
            pages.extend(r.run_id for r in page)
            if cursor is None:
                break
        created = {r.run_id: (r.created_at, r.run_id) for r in list_runs(conn, limit=500)[0]}
        assert sorted(pages) == sorted(everyone) and len(pages) == len(set(pages))
        assert [created[r] for r in pages] == sorted(created.values(), reverse=True)

        def ids(**filters: object) -> set[str]:
            return {r.run_id for r in list_runs(conn, limit=100, **filters)[0]}  # type: ignore[arg-type]

        assert ids(status="running") == {made[0]}
        assert ids(workflow_id="refund") == set(tied)
        assert ids(tenant_id="globex") == {made[i] for i in range(0, 9, 2)}
        assert ids(tag="vip") == {made[0], made[3], made[6]}
        assert ids(tag="vip", tenant_id="globex") == {made[0], made[6]}
        assert ids(parent_run_id=parent) == set(made[:4])
        first, cursor = list_runs(conn, tag="vip", limit=2)
        assert cursor is not None
        rest, end = list_runs(conn, tag="vip", limit=2, cursor=cursor)
        assert end is None and len(first) + len(rest) == 3
    with store.engine.connect() as conn, pytest.raises(InvalidRequest, match="cursor"):
        list_runs(conn, cursor="not-a-cursor")


def test_history_is_the_stream_with_metadata(store: EventStore) -> None:
    run_id = _create(store)
    _add(store, run_id, ev.RunStarted(), causation="cmd-7")
    entries = [e.to_wire() for e in history(store, run_id)]
    assert [e["type"] for e in entries] == ["RunCreated", "RunStarted"]
    assert [e["version"] for e in entries] == [1, 2]
    assert entries[0]["position"] < entries[1]["position"]
    assert entries[0]["metadata"]["actor"] == "alice"
    assert entries[0]["metadata"]["idempotency_key"] == f"key-{run_id}"
    assert entries[0]["metadata"]["correlation_id"] == "corr-1"
    assert entries[1]["metadata"]["causation_id"] == "cmd-7"
    assert entries[0]["data"]["workflow_id"] == "checkout" and entries[0]["recordedAt"]
    assert history(store, str(uuid.uuid4())) == []


LIST_FILTERS: list[dict[str, Any]] = [
    {}, {"status": "running"}, {"workflow_id": "wf-3"}, {"tenant_id": "t-5"},
    {"tag": "tag-2"}, {"parent_run_id": "parent-9"}, {"resumed_from": "run-7"},
    {"rerun_of": "run-8"}, {"compensation": "compensation_failed"}]


def test_list_queries_use_an_index_on_postgres(pg_engine: Engine) -> None:
    _fill(pg_engine, 20_000)
    cursor = encode_cursor(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=10_000),
                           "run-10000")
    for filters in LIST_FILTERS:
        for after in (None, cursor):
            query = list_runs_query(**filters, limit=51, cursor=after)
            compiled = query.compile(dialect=pg_engine.dialect)
            with pg_engine.connect() as conn:
                plan = "\n".join(row[0] for row in conn.exec_driver_sql(
                    "EXPLAIN " + str(compiled), compiled.params))
            assert "Seq Scan" not in plan, (filters, plan)
            assert "Index" in plan, (filters, plan)


def _fill(engine: Engine, count: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    statuses = ["pending", "running", "suspended", "completed", "failed"]
    rows: list[dict[str, Any]] = [
            {"run_id": f"run-{i}", "workflow_id": f"wf-{i % 50}", "workflow_version": "1",
             "status": statuses[i % 5] if i % 100 else "running", "input": None,
             "result": None, "error": None, "waitpoint": None, "wake_at": None,
             "timeout_at": None, "parent_run_id": f"parent-{i % 500}", "parent_step_id": None,
             "children": [], "tenant_id": f"t-{i % 40}", "tenant_meta": {}, "tags": [],
             "created_at": start + timedelta(seconds=i), "updated_at": start, "version": 1,
             "resumed_from": f"run-{i % 300}", "rerun_of": f"run-{i % 400}",
             "compensation": ["compensated", "compensation_failed", None][i % 3]
             if i % 5 == 4 else None, "queue": None, "priority": 0}
            for i in range(count)]
    tags = [{"run_id": f"run-{i}", "tag": f"tag-{i % 30}",
             "created_at": start + timedelta(seconds=i)} for i in range(count)]
    with engine.begin() as conn:
        conn.execute(run_views.insert(), rows)
        conn.execute(run_tags.insert(), tags)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE run_views"))
        conn.execute(sa.text("ANALYZE run_tags"))
