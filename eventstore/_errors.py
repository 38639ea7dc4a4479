"""The one place where driver errors become ledgerflow errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from sqlalchemy import exc as sa_exc

from ledgerflow.domain.errors import (
    ConcurrencyError,
    DuplicateEventId,
    LedgerflowError,
    StoreUnavailable,
)
from ledgerflow.eventstore.records import StreamAppend


def _constraint(error: BaseException) -> str:
    """The violated constraint's name (psycopg) or the driver's message (sqlite3)."""
    orig = getattr(error, "orig", None) or error
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return str(name) if name else str(orig)


def is_unique_violation(error: BaseException) -> bool:
    """A unique violation raised by the driver itself (a raw psycopg cursor)."""
    return isinstance(error, psycopg.errors.UniqueViolation)


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


def integrity_error(
    error: BaseException,
    appends: Sequence[StreamAppend],
    current_version: Callable[[str], int],
) -> LedgerflowError | None:
    """Translate a failed event insert; None if the violation is not about events."""
    where = _constraint(error)
    if "event_id" in where:
        ids = [e.event_id for a in appends for e in a.events]
        return DuplicateEventId(ids)
    if "events_stream_version_key" in where or "events.stream_id, events.version" in where:
        return conflict(appends, {a.stream_id: current_version(a.stream_id) for a in appends})
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Turn connection-level driver failures into `StoreUnavailable`."""
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
        raise StoreUnavailable(f"event store unavailable: {error.orig}") from error
    except (psycopg.OperationalError, psycopg.InterfaceError) as error:
        raise StoreUnavailable(f"event store unavailable: {error}") from error
