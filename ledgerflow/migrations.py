"""Every component's migrations, in dependency order; `ledgerflow db upgrade` applies
them. `open_existing` is how a reader opens a database without creating anything."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ledgerflow import eventstore
from ledgerflow.domain.errors import DatabaseNotReady
from ledgerflow.eventstore.database import (
    backend_for,
    create_engine,
    display_url,
    missing_file,
)
from ledgerflow.eventstore.migrations import Migration, concerning, pending, upgrade


def all_migrations() -> list[Migration]:
    import ledgerflow.runtime.queue
    import ledgerflow.runtime.schedules
    from ledgerflow import outbox, projections
    return [*eventstore.MIGRATIONS, *projections.MIGRATIONS, *outbox.MIGRATIONS,
            *ledgerflow.runtime.queue.MIGRATIONS, *ledgerflow.runtime.schedules.MIGRATIONS]


def upgrade_all(engine: Engine) -> list[Migration]:
    """Apply whatever is missing; returns what this call applied."""
    return upgrade(engine, all_migrations())


def require_schema(engine: Engine) -> None:
    """`DatabaseNotReady` unless every migration is applied (creates nothing)."""
    missing = pending(engine, all_migrations())
    if not missing:
        return
    every = concerning(all_migrations(), backend_for(engine).name)
    state = "has no ledgerflow schema" if len(missing) == len(every) else \
        f"is not upgraded ({len(missing)} of {len(every)} migrations pending)"
    raise DatabaseNotReady(f"the database {engine.url.render_as_string(hide_password=True)} "
                           f"{state}; run `ledgerflow db upgrade`")


def open_existing(url: str) -> Engine:
    """An engine on the ledgerflow database at `url`, which must exist and be upgraded:
    `DatabaseNotReady` naming the URL and `ledgerflow db upgrade` otherwise. Unlike
    `create_engine` alone, it never creates a SQLite file or a table."""
    absent = missing_file(url)
    if absent is not None:
        raise DatabaseNotReady(f"no database at {display_url(url)} ({absent.resolve()} does "
                               "not exist); `ledgerflow db upgrade` creates it")
    engine = create_engine(url)
    try:
        require_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
