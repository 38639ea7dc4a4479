"""API fixtures: a `Ledgerflow` on the session PostgreSQL database (tables emptied per
test) with the test workflows, and TestClients with and without tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.settings import Settings
from tests.api._workflows import registry

TOKENS = "root-token=*,acme-token=acme,globex-token=globex"
ROOT = {"Authorization": "Bearer root-token"}
ACME = {"Authorization": "Bearer acme-token"}
GLOBEX = {"Authorization": "Bearer globex-token"}


@pytest.fixture
def settings(pg_engine: SAEngine, pg_url: str, tmp_path: object) -> Settings:
    return Settings(database_url=pg_url, sink_path=f"{tmp_path}/events.jsonl",
                    max_body_bytes=64 * 1024)


@pytest.fixture
def lf(settings: Settings) -> Iterator[Ledgerflow]:
    app = Ledgerflow.open(settings, registry=registry(), upgrade=False)
    yield app
    app.close()


@pytest.fixture
def client(lf: Ledgerflow) -> Iterator[TestClient]:
    """No tokens configured: every caller sees every tenant."""
    with TestClient(create_app(lf)) as c:
        yield c


@pytest.fixture
def authed(lf: Ledgerflow, settings: Settings) -> Iterator[TestClient]:
    """Tokens configured: root sees all, acme and globex only their tenant."""
    with TestClient(create_app(lf, settings.model_copy(update={"api_tokens": TOKENS}))) as c:
        yield c
