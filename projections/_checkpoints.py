"""Checkpoint rows: a projection's built version, position, generation and rebuild lease.

A missing row is created as "current" (code version, position 0, generation 1):
the live tables of an inline projection are current from the first append. A
release that adds a projection to an existing store ships a migration that
inserts its row with version 0, so the projection is rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledgerflow.eventstore.database import backend_for
from ledgerflow.projections._base import Projection
from ledgerflow.projections._schema import projection_checkpoints as cp


@dataclass(frozen=True)
class Checkpoint:
    """One projection's checkpoint row."""

    name: str
    version: int
    position: int
    table_generation: int
    rebuild_owner: str | None
    rebuild_until: datetime | None
    updated_at: datetime


def ensure(conn: Connection, projections: Sequence[Projection], now: datetime) -> None:
    """Create the missing checkpoint rows (as current)."""
    rows = [{"name": p.name, "version": p.version, "position": 0, "table_generation": 1,
             "updated_at": now} for p in projections]
    if rows:
        conn.execute(backend_for(conn).insert_or_ignore(cp, [cp.c.name]), rows)


def load(conn: Connection, names: Sequence[str]) -> dict[str, Checkpoint]:
    """The checkpoint rows of `names` that exist."""
    rows = conn.execute(sa.select(cp).where(cp.c.name.in_(list(names))))
    return {row.name: Checkpoint(**row._asdict()) for row in rows}


def lock_position(conn: Connection, name: str) -> int | None:
    """The checkpoint position, locked for this transaction; None if another holds it.

    PostgreSQL: a row lock with SKIP LOCKED, so a second projector moves on at
    once. SQLite: the write transaction already holds the database lock.
    """
    query = backend_for(conn).skip_locked(sa.select(cp.c.position).where(cp.c.name == name))
    found = conn.execute(query).scalar_one_or_none()
    return None if found is None else int(found)


def advance(conn: Connection, name: str, position: int, now: datetime) -> None:
    conn.execute(sa.update(cp).where(cp.c.name == name)
                 .values(position=position, updated_at=now))


def claim_rebuild(conn: Connection, names: Sequence[str], owner: str, now: datetime,
                  lease: timedelta) -> bool:
    """Take (or renew) the rebuild lease of every name, or none of them."""
    free = sa.or_(cp.c.rebuild_owner.is_(None), cp.c.rebuild_until < now,
                  cp.c.rebuild_owner == owner)
    result = conn.execute(
        sa.update(cp).where(cp.c.name.in_(list(names)), free)
        .values(rebuild_owner=owner, rebuild_until=now + lease))
    return result.rowcount == len(names)


def release_rebuild(conn: Connection, names: Sequence[str], owner: str) -> None:
    conn.execute(sa.update(cp).where(cp.c.name.in_(list(names)), cp.c.rebuild_owner == owner)
                 .values(rebuild_owner=None, rebuild_until=None))


def swapped(conn: Connection, projection: Projection, position: int, now: datetime) -> None:
    """Record a swap: the live tables are now the projection's code version."""
    conn.execute(
        sa.update(cp).where(cp.c.name == projection.name)
        .values(version=projection.version, position=position,
                table_generation=cp.c.table_generation + 1, rebuild_owner=None,
                rebuild_until=None, updated_at=now))
