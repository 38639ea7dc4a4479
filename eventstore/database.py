"""The one place that knows which database ledgerflow runs on: engines for the two
backends, configured once here, and the backend adapter of an engine or connection.

`backend_for(engine_or_connection)` is how every other part learns what differs:
it returns the `Backend` (eventstore/backend.py) of the bind's dialect, the
PostgreSQL or the SQLite adapter. Nothing else reads the dialect's name.

SQLite runs in WAL mode; a write transaction starts with `BEGIN IMMEDIATE` so two
writers queue on the database lock instead of failing to upgrade a read lock.
A read-only connection (execution option `readonly=True`) starts with `BEGIN`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import postgres, sqlite
from ledgerflow.eventstore.backend import Backend

DEFAULT_URL = "sqlite:///./ledgerflow.db"

_SUPPORTED = ("postgresql+psycopg://", "sqlite://", "sqlite+pysqlite://")


def normalize_url(url: str) -> str:
    """Map `postgres://` / `postgresql://` to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_engine(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    """An engine for `url` with ledgerflow's per-backend settings; `ValueError` for a
    URL of another database or driver (`postgresql+psycopg2://`, `mysql://`)."""
    url = normalize_url(url)
    if not url.startswith(_SUPPORTED):
        raise ValueError(f"unsupported database URL {display_url(url)!r}; use postgresql:// "
                         "or sqlite:///")
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("json_serializer", dumps)
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("postgresql+psycopg"):
        from psycopg.types.json import set_json_loads

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            set_json_loads(orjson.loads, dbapi_conn)  # jsonb columns decode with orjson

    return engine


def display_url(url: str) -> str:
    """`url` as it may be shown: without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("://", 1)[0] + "://..."


def missing_file(url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist (connecting would create it);
    None for an in-memory database, an existing file, or another database."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return None
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path


def dumps(value: Any) -> str:
    """JSON text for a JSON/JSONB column (orjson: several times faster than `json`)."""
    return orjson.dumps(value).decode()


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", 30)
    kwargs.setdefault("json_serializer", dumps)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        readonly = conn.get_execution_options().get("readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


_BACKENDS: dict[str, Backend] = {postgres.BACKEND.name: postgres.BACKEND,
                                 sqlite.BACKEND.name: sqlite.BACKEND}


def backend_for(bind: Engine | sa.Connection) -> Backend:
    """The backend adapter of `bind`'s database (cheap: a dict lookup, fine per call)."""
    try:
        return _BACKENDS[bind.dialect.name]
    except KeyError:
        raise ValueError(f"ledgerflow runs on PostgreSQL or SQLite, not on "
                         f"{bind.dialect.name!r}") from None



def _admin(server_url: str) -> tuple[Engine, sa.engine.URL]:
    url = sa.engine.make_url(normalize_url(server_url))
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    return admin, url


def create_database(server_url: str, name: str, *, replace: bool = False) -> str:
    """Create PostgreSQL database `name` on `server_url`'s server; return its URL.

    For test sessions and benchmarks (`replace` drops an existing one first).
    """
    admin, url = _admin(server_url)
    try:
        with admin.connect() as conn:
            if replace:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """Drop PostgreSQL database `name`, disconnecting whoever is still on it."""
    admin, _url = _admin(server_url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
