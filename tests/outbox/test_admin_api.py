"""`POST /api/outbox/dead-letters/discard`, beside the replay route (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import JsonlSinkPublisher, OutboxWriter, Relay, dead_letters
from ledgerflow.settings import Settings
from tests.outbox._support import FailingFor, append_run, run_history, status_counts


@pytest.fixture
def lf(sqlite_url: str, tmp_path: Path) -> Iterator[Ledgerflow]:
    app = Ledgerflow.open(Settings(database_url=sqlite_url, sink_path=str(tmp_path / "s"),
                                   api_tokens="root=*,acme-token=acme"))
    store = EventStore(app.db, hooks=[OutboxWriter()])
    append_run(store, run_history(steps=0, fail=True))
    relay = Relay(app.db, FailingFor(JsonlSinkPublisher(tmp_path / "s"), "StepFailed"),
                  max_attempts=1)
    while relay.run_once().claimed:
        pass
    yield app
    app.close()


def test_discard_route_gives_up_dead_rows_and_their_run_moves_on(lf: Ledgerflow) -> None:
    root = {"Authorization": "Bearer root"}
    dead = [d.id for d in dead_letters(lf.db)]
    assert status_counts(lf.db) == {"published": 2, "dead": 1, "pending": 1}  # RunFailed held
    with TestClient(create_app(lf)) as client:
        assert client.post("/api/outbox/dead-letters/discard", json={"ids": dead},
                           headers={"Authorization": "Bearer acme-token"}).status_code == 403
        assert client.post("/api/outbox/dead-letters/discard", json={"ids": []},
                           headers=root).status_code == 422
        response = client.post("/api/outbox/dead-letters/discard",
                               json={"ids": [*dead, 12345]}, headers=root)
        assert response.status_code == 200 and response.json() == {"discarded": dead}
        assert client.get("/api/outbox/dead-letters", headers=root).json()["data"] == []
        paths = client.get("/openapi.json", headers=root).json()["paths"]
        assert "/api/outbox/dead-letters/discard" in paths
    Relay(lf.db, JsonlSinkPublisher(lf.settings.sink_path)).run_once()
    assert status_counts(lf.db) == {"published": 3, "discarded": 1}
