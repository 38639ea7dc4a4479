"""Observability fixtures: a `Ledgerflow` on each backend with a fake clock, the API
test workflows, and the store gauges read afresh on every scrape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ledgerflow._app import Ledgerflow
from ledgerflow.settings import Settings
from ledgerflow.testing import FakeClock
from tests.api._workflows import registry


@pytest.fixture
def clock() -> FakeClock:
    """Starts at the real time (the doctor compares it with the database's clock)."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: object) -> Settings:
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
    else:
        request.getfixturevalue("pg_engine")  # tables emptied
        url = request.getfixturevalue("pg_url")
    return Settings(database_url=url, sink_path=f"{tmp_path}/events.jsonl",
                    metrics_cache_seconds=0)


@pytest.fixture
def lf(settings: Settings, clock: FakeClock) -> Iterator[Ledgerflow]:
    app = Ledgerflow.open(settings, registry=registry(), clock=clock)
    yield app
    app.close()
