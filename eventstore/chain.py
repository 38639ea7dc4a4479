"""The hash chain of every stream: what makes a run's history tamper-evident.

Each event stores `hash = sha256(H ‖ canonical event)` as 64 lower-case hex digits,
where H is the hash of the previous event of its stream (as those 64 ASCII
characters; the empty string before version 1) and ‖ is concatenation of bytes.

The canonical event is one JSON object, UTF-8, keys sorted at every depth, no
whitespace (`,` and `:` separators), of the fields that are stored and never
legitimately change:

    {"data": …, "eventId": …, "metadata": …, "recordedAt": …,
     "schemaVersion": …, "stream": …, "type": …, "version": …}

- `data` and `metadata` are the stored JSON values; numbers are written as the
  stored value reads back on both databases (PostgreSQL's jsonb keeps a number,
  not its spelling): a float with an integral value below 2**63 in magnitude is
  written as that integer, any other float as the shortest form that reads back
  as the same double;
- `recordedAt` is the recorded time in UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`;
- the global `position` is left out: it is where the event sits in the whole
  store, not part of the run's history (and a restored archive keeps it anyway).

"version" is the last key in that order, so the canonical event is a prefix
(`canonical_prefix`, computed by the writer) followed by `<version>}`: on
PostgreSQL the version and the previous hash are only known inside the append
statement, which finishes the canonical event and hashes it there (the
`ledgerflow_chain` aggregate of eventstore migration 3), with no read before the
write. SQLite reads the head in its write transaction and hashes here (`link`).

`verify` checks a stream's stored rows against the chain and names the first
version that does not hold, and why.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from ledgerflow.domain.events import decode
from ledgerflow.eventstore.records import RecordedEvent

_LIMIT = 2 ** 63


def plain(value: Any) -> Any:
    """`value` with its numbers as the canonical event writes them (see module doc)."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and -_LIMIT <= value < _LIMIT else value
    if kind is dict:
        return {key: plain(item) for key, item in value.items()}
    if kind is list:
        return [plain(item) for item in value]
    return value


def recorded_text(at: datetime) -> str:
    """The canonical form of a recorded time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_FLOAT = re.compile(r"[:,\[]\s*-?\d+[.eE]")
"""Where a JSON text may hold a float (or a string that looks like one: then the walk
of `plain` finds nothing to change); texts without one skip that walk."""


def _json_value(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _plain_value(value: Any) -> Any:
    """The JSON value of `value` (a text or a value) with canonical numbers."""
    if isinstance(value, str):
        return plain(orjson.loads(value)) if _FLOAT.search(value) else orjson.loads(value)
    return plain(_json_value(value))


def canonical_prefix(stream_id: str, event_id: str, type_name: str, schema_version: int,
                     data: Any, metadata: Any, recorded_at: str) -> bytes:
    """The canonical event up to its version: `…,"version":` (`data` and `metadata`
    as JSON text or as values; `recorded_at` from `recorded_text`)."""
    body = orjson.dumps({
        "data": _plain_value(data), "eventId": event_id,
        "metadata": _plain_value(metadata), "recordedAt": recorded_at,
        "schemaVersion": schema_version, "stream": stream_id, "type": type_name,
    }, option=orjson.OPT_SORT_KEYS)
    return body[:-1] + b',"version":'


def link(previous: str, prefix: bytes, version: int) -> str:
    """The hash of the event whose canonical prefix is `prefix`, at `version`, after
    an event whose hash is `previous` ("" for the first)."""
    return hashlib.sha256(previous.encode() + prefix + b"%d}" % version).hexdigest()


class StoredEvent(NamedTuple):
    """An event as its row holds it, undecoded (what audits and archives read)."""

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    schema_version: int
    data: Any
    metadata: Any
    recorded_at: datetime
    hash: str | None

    def expected_hash(self, previous: str) -> str:
        """The hash this row should hold after an event whose hash is `previous`."""
        prefix = canonical_prefix(self.stream_id, self.event_id, self.type,
                                  self.schema_version, self.data, self.metadata,
                                  recorded_text(self.recorded_at))
        return link(previous, prefix, self.version)

    def recorded(self) -> RecordedEvent:
        """The event decoded, as the store's readers give it."""
        meta = _json_value(self.metadata)
        return RecordedEvent(self.position, self.stream_id, self.version, self.event_id,
                             self.type, self.schema_version,
                             decode(self.type, self.schema_version, _json_value(self.data)),
                             meta, self.recorded_at)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one stream: `verified`, else the first version that
    does not hold (`first_bad_version`) and what is wrong with it (`reason`)."""

    stream_id: str
    events: int
    verified: bool
    head: str | None = None
    first_bad_version: int | None = None
    reason: str | None = None


def verify(stream_id: str, rows: Iterable[StoredEvent], last_version: int | None = None,
           ) -> Verdict:
    """Check `rows` (the stream's stored events in version order) against the chain.

    Found: an event whose content changed (its hash no longer matches), a version
    missing (deleted) or out of place, a hash changed or removed, and, with
    `last_version` (the version the stream is known to have reached, as a run's view
    records it), events removed from the end.
    """
    previous, count, head = "", 0, None
    for row in rows:
        count += 1
        expected_version = count
        if row.version != expected_version:
            what = "is missing" if row.version > expected_version else "is out of place"
            return _bad(stream_id, count - 1, expected_version,
                        f"version {expected_version} {what}: the next stored event is "
                        f"version {row.version} ({row.type}, event {row.event_id})")
        if row.hash is None:
            return _bad(stream_id, count, row.version,
                        f"version {row.version} ({row.type}) has no hash")
        expected = row.expected_hash(previous)
        if row.hash != expected:
            return _bad(stream_id, count, row.version, _mismatch(row, previous, expected))
        previous = head = row.hash
    if last_version is not None and count < last_version:
        return _bad(stream_id, count, count + 1,
                    f"the stream ends at version {count} but reached version "
                    f"{last_version}: events from version {count + 1} on were removed")
    return Verdict(stream_id, count, True, head)


def verify_each(rows: Iterable[StoredEvent]) -> Iterator[Verdict]:
    """`verify` of each stream of `rows` (streams one after another, each in version
    order, as `EventStore.iter_stored` gives them)."""
    for stream_id, group in itertools.groupby(rows, key=lambda row: row.stream_id):
        yield verify(stream_id, group)


def _mismatch(row: StoredEvent, previous: str, expected: str) -> str:
    return (f"version {row.version} ({row.type}, event {row.event_id}) does not match its "
            f"hash: stored {row.hash[:12] if row.hash else None}…, its content and the "
            f"previous hash {previous[:12] or '(none)'}… give {expected[:12]}…; its data, "
            "metadata, type, recorded time or the chain before it was changed")


def _bad(stream_id: str, count: int, version: int, reason: str) -> Verdict:
    return Verdict(stream_id, count, False, None, version, reason)


def chain(rows: Sequence[StoredEvent]) -> list[str]:
    """The hashes `rows` (one stream's events from version 1, in order) should hold."""
    hashes: list[str] = []
    previous = ""
    for row in rows:
        previous = row.expected_hash(previous)
        hashes.append(previous)
    return hashes
