"""Events as every backend writes them: their texts, checked before any statement, and
the recorded events an append returns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import orjson

from ledgerflow.domain.errors import EventTooLarge, InvalidEvent
from ledgerflow.domain.events import nul_in_json
from ledgerflow.eventstore.backend import Encoded
from ledgerflow.eventstore.records import NewEvent, RecordedEvent, StreamAppend


def encode_appends(appends: Sequence[StreamAppend], max_bytes: int | None = None) -> Encoded:
    """(type, schema version, data JSON, metadata JSON) of each event; `max_bytes`: the
    largest event allowed (see `event_size`), else `EventTooLarge` and nothing is written."""
    return [[_texts(append, new, max_bytes) for new in append.events] for append in appends]


def event_size(data: str, meta: str) -> int:
    """An event's size as the store counts it: the UTF-8 bytes of its data and metadata
    JSON, as stored (the outbox message wraps both in an envelope of bounded size)."""
    return len(data.encode()) + len(meta.encode())


def _texts(append: StreamAppend, new: NewEvent,
           max_bytes: int | None = None) -> tuple[str, int, str, str]:
    """(type, schema version, data JSON, metadata JSON) of an event; refused with
    `InvalidEvent`, on both backends alike and before anything is written, what
    PostgreSQL cannot store: a NUL character (U+0000) or text that is not valid Unicode
    (an unpaired surrogate), in the ids, the data or the metadata; and, over
    `max_bytes`, what could never be published (`EventTooLarge`)."""
    type_name = new.event.type_name()
    try:
        data = new.event.model_dump_json()
        meta = orjson.dumps(new.metadata).decode()
        append.stream_id.encode()
        new.event_id.encode()
    except (ValueError, TypeError) as error:  # surrogates; orjson: also ints over 64 bits
        raise InvalidEvent(f"{type_name} for stream {append.stream_id!r} cannot be stored "
                           f"({error}); nothing was appended") from None
    where = ("its stream id" if "\x00" in append.stream_id else
             "its event id" if "\x00" in new.event_id else
             "its data" if nul_in_json(data) else
             "its metadata" if nul_in_json(meta) else None)
    if where is not None:
        raise InvalidEvent(
            f"{type_name} for stream {append.stream_id!r} holds a NUL character (\\u0000) "
            f"in {where}, which the store cannot keep (PostgreSQL refuses it); "
            "nothing was appended")
    # At most 4 UTF-8 bytes a character: below a quarter of the limit, no need to count.
    if max_bytes is not None and len(data) + len(meta) > max_bytes // 4:
        size = event_size(data, meta)
        if size > max_bytes:
            raise EventTooLarge(type_name, append.stream_id, size, max_bytes)
    return type_name, new.event.schema_version, data, meta


def recorded_events(appends: Sequence[StreamAppend], encoded: Encoded,
                    placed: Iterator[tuple[int, int]], now: datetime) -> list[RecordedEvent]:
    """The recorded events of `appends` in append order, each at the next (position,
    version) of `placed`."""
    return [
        RecordedEvent(position, append.stream_id, version, new.event_id, type_name,
                      schema_version, new.event, new.metadata, now)
        for append, texts in zip(appends, encoded, strict=True)
        for new, (type_name, schema_version, _data, _meta), (position, version)
        in zip(append.events, texts, placed, strict=False)  # placed: one iterator for all
    ]


def expected_versions(appends: Sequence[StreamAppend]) -> Iterator[tuple[int, int]]:
    """(0, version) of each event of `appends`, counted from its expected version: where
    they will be if the append succeeds (positions are not known yet)."""
    for append in appends:
        base = append.expected_version or 0
        for n in range(1, len(append.events) + 1):
            yield 0, base + n
