"""Fixtures of the outbox tests: a downstream service's own table of effects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.outbox.consumer import InboxMessage

_downstream = sa.MetaData()
effects = sa.Table(
    "test_downstream_effects", _downstream,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
)


def record_effect(conn: Connection, message: InboxMessage) -> None:
    """A downstream handler: one row per message it handles (no dedupe of its own)."""
    value = message.json()
    conn.execute(effects.insert().values(event_id=value["eventId"],
                                         event_type=value["eventType"]))


def effect_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(effects.c.event_id, sa.func.count())
                            .group_by(effects.c.event_id))
        return {event_id: int(n) for event_id, n in rows}


@pytest.fixture
def downstream(pg_engine: Engine) -> Iterator[Engine]:
    """The PostgreSQL engine with an empty downstream effects table."""
    _downstream.drop_all(pg_engine)
    _downstream.create_all(pg_engine)
    yield pg_engine
    _downstream.drop_all(pg_engine)
