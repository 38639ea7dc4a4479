"""The one place where driver errors become ledgerflow errors.

What differs per driver (which constraint a unique violation names, which of its
errors mean the database is gone) each backend adapter says; the ledgerflow error
for it is made here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from ledgerflow.domain.errors import (
    ConcurrencyError,
    DuplicateEventId,
    LedgerflowError,
    StoreUnavailable,
)
from ledgerflow.eventstore.backend import StreamVersion
from ledgerflow.eventstore.records import StreamAppend


def conflict(appends: Sequence[StreamAppend], actual: dict[str, int]) -> ConcurrencyError:
    """The error for the first stream whose expected version is not its actual one."""
    for append in appends:
        if append.expected_version is not None and append.expected_version != actual.get(
                append.stream_id, 0):
            return ConcurrencyError(append.stream_id, append.expected_version,
                                    actual.get(append.stream_id, 0))
    first = appends[0]
    found = actual.get(first.stream_id, 0)
    return ConcurrencyError(first.stream_id, found if first.expected_version is None
                            else first.expected_version, found)


def integrity_error(constraint: str, appends: Sequence[StreamAppend],
                    current_version: StreamVersion) -> LedgerflowError | None:
    """The error for a failed event insert that violated `constraint` (its name, or the
    driver's message naming its columns); None if the violation is not about events."""
    if "event_id" in constraint:
        ids = [e.event_id for a in appends for e in a.events]
        return DuplicateEventId(ids)
    if "events_stream_version_key" in constraint \
            or "events.stream_id, events.version" in constraint:
        return conflict(appends, {a.stream_id: current_version(a.stream_id) for a in appends})
    return None


@contextmanager
def translated(unavailable: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn connection-level failures into `StoreUnavailable`: SQLAlchemy's, and the
    driver's own `unavailable` errors (statements sent on the driver's cursor)."""
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
        raise StoreUnavailable(f"event store unavailable: {error.orig}") from error
    except unavailable as error:
        raise StoreUnavailable(f"event store unavailable: {error}") from error
