"""What goes into the store and what comes out of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from domain.events import Event


def new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append, with its id and metadata (correlation, causation, actor ...)."""

    event: Event
    event_id: str = field(default_factory=new_event_id)
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
