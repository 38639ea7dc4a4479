"""The metadata of a run's events (what caused them, who asked). A run's stream is read
through the store: `Transaction.read_stream` inside a write transaction."""

from __future__ import annotations

from typing import Any


def event_metadata(base: dict[str, Any], causation_id: str | None,
                   actor: str | None = None) -> dict[str, Any]:
    """A run's base metadata plus what caused this event (and who asked for it)."""
    meta = dict(base)
    if causation_id is not None:
        meta["causation_id"] = causation_id
    if actor is not None:
        meta["actor"] = actor
    return meta
