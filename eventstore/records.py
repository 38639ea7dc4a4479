"""What goes into the store and what comes out of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from random import getrandbits
from typing import Any, NamedTuple

from ledgerflow.domain.events import Event

_VERSION_4 = (0x4 << 76) | (0x2 << 62)  # version nibble 4, RFC 4122 variant bits 10
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def new_id() -> str:
    """A random (version 4) UUID string, for event and run ids.

    From `random.getrandbits` rather than `uuid.uuid4()`: ids must be unique, not
    secret, and `uuid4`'s `os.urandom` call was ~3% of a workflow's client CPU here.
    The generator is seeded from the OS and reseeded in a forked child (the `random`
    module does that itself), so worker processes do not repeat each other's ids.
    """
    value = f"{(getrandbits(128) & _CLEAR) | _VERSION_4:032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"



@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append, with its id and metadata (correlation, causation, actor ...)."""

    event: Event
    event_id: str = field(default_factory=new_id)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events for one stream and the version the writer expects the stream to be at.

    `expected_version=0` means the stream must not exist yet; `None` appends after
    whatever is there (no concurrency check; for commands that only add facts).
    """

    stream_id: str
    events: list[NewEvent]
    expected_version: int | None = None


class RecordedEvent(NamedTuple):
    """An event as stored: global position, stream version, ids, decoded event.

    Immutable. A NamedTuple rather than a frozen dataclass: catch-up reads build
    one per event, and a frozen dataclass's __init__ costs three times as much.
    """

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    schema_version: int
    event: Event
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def data(self) -> dict[str, Any]:
        return self.event.model_dump(mode="json")
