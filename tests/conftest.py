"""Shared fixtures: a fresh PostgreSQL database per session, SQLite per test, the broker."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import create_engine
from ledgerflow.eventstore.database import create_database, drop_database
from ledgerflow.eventstore.schema import metadata
from ledgerflow.migrations import upgrade_all
from ledgerflow.observability.logs import _HANDLER_NAME as LOG_HANDLER_NAME
from ledgerflow.runtime.queues import ensure_default_queue

pytest_plugins = ["tests._broker"]

PG_SERVER = os.environ.get(
    "LEDGERFLOW_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def _root_logging_as_it_was() -> Iterator[None]:
    """A test that runs a CLI command in-process installs ledgerflow's log handler on
    the root logger (`configure_logging`), on the process's stderr. Left there, later
    tests' log lines go to that stream too: under pytest-xdist a pipe nobody reads until
    the end, so once it is full every thread that logs blocks. Put back what was."""
    root = logging.getLogger()
    for installed in [h for h in root.handlers if h.get_name() == LOG_HANDLER_NAME]:
        root.removeHandler(installed)  # one an earlier test (or an import) left there
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a database created for this test session and dropped after it."""
    name = f"lf_test_{uuid.uuid4().hex[:10]}"
    url = create_database(PG_SERVER, name)
    engine = create_engine(url)
    upgrade_all(engine)
    engine.dispose()
    yield url
    drop_database(PG_SERVER, name)


def _truncate(engine: Engine) -> None:
    names = [t.name for t in metadata.sorted_tables if t.name != "schema_migrations"]
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        present = ", ".join(f'"{n}"' for n in names if n in existing)
        if present:
            conn.execute(sa.text(f"TRUNCATE {present} RESTART IDENTITY CASCADE"))
        if "queue_limits" in existing:  # as the migrations leave it: "default" exists
            ensure_default_queue(conn)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the session database, every table emptied first."""
    engine = create_engine(pg_url)
    _truncate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/ledgerflow.db"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlite_url)
    upgrade_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_engine(request: pytest.FixtureRequest) -> Engine:
    """Each test using it runs once per backend."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    engine: Engine = request.getfixturevalue(name)
    return engine
