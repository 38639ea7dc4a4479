"""Every component's migrations, in dependency order; `ledgerflow db upgrade` applies them."""

from __future__ import annotations

from sqlalchemy.engine import Engine

import eventstore
from eventstore.migrations import Migration, upgrade


def all_migrations() -> list[Migration]:
    import ledgerflow._queue
    import outbox
    import projections

    return [*eventstore.MIGRATIONS, *projections.MIGRATIONS, *outbox.MIGRATIONS,
            *ledgerflow._queue.MIGRATIONS]


def upgrade_all(engine: Engine) -> list[Migration]:
    """Apply whatever is missing; returns what this call applied."""
    return upgrade(engine, all_migrations())
