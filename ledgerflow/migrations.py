"""Every component's migrations, in dependency order; `ledgerflow db upgrade` applies them."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ledgerflow import eventstore
from ledgerflow.eventstore.migrations import Migration, upgrade


def all_migrations() -> list[Migration]:
    import ledgerflow.runtime.queue
    from ledgerflow import outbox, projections
    return [*eventstore.MIGRATIONS, *projections.MIGRATIONS, *outbox.MIGRATIONS,
            *ledgerflow.runtime.queue.MIGRATIONS]


def upgrade_all(engine: Engine) -> list[Migration]:
    """Apply whatever is missing; returns what this call applied."""
    return upgrade(engine, all_migrations())
