"""Each wire shape is declared once: the OpenAPI document names exactly the keys the
routes send, and the records follow their tables and the domain's models."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
import pytest
from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from ledgerflow.api._models import Status
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.wire import Page, WireRecord, camel_keys
from ledgerflow.outbox import DeadLetter
from ledgerflow.projections import queries
from ledgerflow.projections._schema import run_views, step_journal
from ledgerflow.projections.queries import JournalEntry, RunRecord


def _component(doc: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


def _response(doc: dict[str, Any], path: str) -> dict[str, Any]:
    ref = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"]["$ref"]
    return _component(doc, ref.rsplit("/", 1)[1])


def _documents(schema: dict[str, Any], body: dict[str, Any]) -> None:
    assert set(schema["properties"]) == set(body)
    assert set(schema["required"]) == set(body)  # every key is always sent


def _nested(schema: dict[str, Any], name: str) -> dict[str, Any]:
    documented: list[dict[str, Any]] = [
        s for s in schema["properties"][name]["anyOf"] if s.get("type") != "null"]
    assert len(documented) == 1
    return documented[0]


@pytest.fixture
def runs(client: TestClient, lf: Ledgerflow) -> tuple[str, str]:
    """A failed run (with an error) and a suspended one (with a waitpoint)."""
    failed = client.post("/api/runs", json={"workflowId": "fragile", "input": {}}).json()["id"]
    waiting = client.post("/api/runs", json={"workflowId": "waiter"}).json()["id"]
    lf.engine.run_due(10)
    return failed, waiting


def test_openapi_documents_exactly_what_the_run_routes_send(
        client: TestClient, runs: tuple[str, str]) -> None:
    doc = client.get("/openapi.json").json()
    failed, waiting = runs
    page = client.get("/api/runs").json()
    _documents(_response(doc, "/api/runs"), page)
    run_schema = _response(doc, "/api/runs/{id}")
    for run_id in (failed, waiting):
        _documents(run_schema, client.get(f"/api/runs/{run_id}").json())
    records = {r["id"]: r for r in page["data"]}
    assert records[failed]["status"] == "failed" and records[waiting]["status"] == "suspended"
    assert set(records[failed]["error"]) == set(_nested(run_schema, "error")["properties"])
    assert set(records[waiting]["waitpoint"]) == set(
        _nested(run_schema, "waitpoint")["properties"])
    history = client.get(f"/api/runs/{failed}/history").json()
    _documents(_response(doc, "/api/runs/{id}/history"), history)
    _documents(_component(doc, "HistoryEntry"), history["data"][0])
    journal = client.get(f"/api/runs/{failed}/journal").json()
    _documents(_response(doc, "/api/runs/{id}/journal"), journal)
    _documents(_component(doc, "JournalEntry"), journal["data"][0])


def test_the_get_routes_encoding_equals_to_wire(lf: Ledgerflow, runs: tuple[str, str]) -> None:
    """GET routes encode `wire_values()` (times and enums left to orjson): the same
    bytes as the JSON-ready `to_wire()` the POST routes and the CLI use."""
    with lf.db.connect() as conn:
        records, _ = queries.list_runs(conn)
        journal = queries.get_journal(conn, runs[0])
    history = queries.history(lf.store, runs[0])
    shown: list[WireRecord] = [*records, *journal, *history]
    assert len(records) == 2 and journal and history
    for record in shown:
        assert orjson.dumps(record.wire_values()) == orjson.dumps(record.to_wire())
    page = Page(records, "next")
    assert orjson.dumps(page.wire_values()) == orjson.dumps(page.to_wire())
    assert all(isinstance(r.to_wire()["createdAt"], str) for r in records)


def test_openapi_documents_the_dead_letters_route(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = client.get("/api/outbox/dead-letters").json()
    _documents(_response(doc, "/api/outbox/dead-letters"), body)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    letter = DeadLetter(1, "e-1", "t", "run-1", "RunStarted", 3, "KafkaError", "down",
                        now, now, now)
    _documents(_component(doc, "DeadLetter"), letter.to_wire())
    assert letter.to_wire()["createdAt"] == now.isoformat()


def test_records_follow_their_tables_and_the_domain() -> None:
    """A column added to a read model's table is a field of its record (on the wire
    unless declared hidden); error and waitpoint show the domain models' fields."""
    assert {f.name for f in fields(RunRecord)} == {c.name for c in run_views.columns}
    assert {f.name for f in fields(JournalEntry)} <= {c.name for c in step_journal.columns}
    assert set(get_args(Status)) == {s.value for s in RunStatus}
    error = ev.ErrorInfo(type="ValueError", message="no", step_id="s")
    wait = ev.Waitpoint(kind="token", name="t", token_id="x")
    assert set(camel_keys(error.model_dump(mode="json"))) == {"type", "message", "stepId",
                                                               "details", "traceback"}
    assert set(camel_keys(wait.model_dump(mode="json"))) == {"kind", "name", "tokenId",
                                                              "wakeAt", "timeoutAt", "pending"}
