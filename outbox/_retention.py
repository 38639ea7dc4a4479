"""How long published outbox rows are kept, and their purge.

A row is published once; after that it is history (the event itself stays in the
event store, and a consumer's inbox keeps the idempotency keys it has seen). The
relay deletes published rows older than the retention (`Relay(retention=...)`,
from `LEDGERFLOW_OUTBOX_RETENTION_HOURS`, default 7 days; 0 keeps them forever),
so the outbox holds the rows in flight plus a window of recent history, whatever
the store's age, and `ledgerflow outbox status` and the table's size stay flat.
Kept for the window: to see what was sent and when (`published_at`), and to replay
a recent batch by hand. Never purged: pending rows (not sent yet), dead rows (a
dead-letter replay needs them; under `on_dead=hold` they hold their key) and
discarded rows (an operator's decision, kept for audit).

Idempotency does not depend on the purged rows: an event's outbox rows are written
once, in its append's transaction (the event id is unique in the store), and the
relay claims pending rows only, so a purged row is never sent again; consumers
dedupe by the `idempotency-key` header in their inbox, which has its own table.

The purge deletes in batches (`batch` rows per transaction, picked on the
`(status, published_at)` index), so it never holds many locks or a long
transaction beside the relay's claims.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore.store import Clock, utcnow
from ledgerflow.outbox._schema import PUBLISHED, outbox

DEFAULT_RETENTION = timedelta(days=7)
PURGE_BATCH = 5_000


def purge_published(engine: Engine, older_than: timedelta, clock: Clock = utcnow, *,
                    batch: int = PURGE_BATCH) -> int:
    """Delete published rows published more than `older_than` ago, `batch` rows per
    transaction; returns how many. Pending, dead and discarded rows stay."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    cutoff = clock() - older_than
    pick = (sa.select(outbox.c.id)
            .where(outbox.c.status == PUBLISHED, outbox.c.published_at < cutoff)
            .order_by(outbox.c.published_at).limit(batch))
    delete = outbox.delete().where(outbox.c.id.in_(pick.scalar_subquery()),
                                   outbox.c.status == PUBLISHED)
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = int(conn.execute(delete).rowcount)
        total += deleted
        if deleted < batch:
            return total
